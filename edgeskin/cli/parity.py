"""`edgeskin parity` and `edgeskin bench`: the checks a user runs before shipping an artifact."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeskin.cli.args import add_contract_args, stated_from_args


def add_parsers(sub) -> None:
    p = sub.add_parser("parity", help="artifacts vs the PyTorch reference on real images: report, plots, verdicts")
    p.add_argument("artifacts", nargs="+", type=Path, help=".tflite/.onnx/.mlpackage artifacts, manifest.json files, or folders written by convert")
    p.add_argument("--reference", type=Path, default=None, help="PyTorch checkpoint (default: the manifest's source checkpoint)")
    p.add_argument("--data", type=Path, default=None, help="real images (default: $EDGESKIN_DATA, else ../shared/data/isic-public beside a checkout, else the bundled CC0 set)")
    p.add_argument("--split", default="test", help="split to check on (default: test)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: parity-<split> beside the first artifact)")
    p.add_argument("--explain", action="store_true", help="block-by-block divergence for every artifact, not only failing ones")
    p.add_argument("--explain-images", type=int, default=8, help="images for the divergence analysis (default 8)")
    p.add_argument("--no-bench", action="store_true", help="skip the latency measurement")
    p.add_argument("--runs", type=int, default=30, help="timed runs per backend (default 30)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: all cores)")
    add_contract_args(p)

    p = sub.add_parser("bench", help="load time, latency percentiles, throughput and peak memory, vs PyTorch")
    p.add_argument("artifacts", nargs="+", type=Path, help=".tflite/.onnx/.mlpackage artifacts, manifest.json files, or folders written by convert")
    p.add_argument("--reference", type=Path, default=None, help="PyTorch checkpoint to compare with (default: the manifest's source)")
    p.add_argument("--threads", type=int, default=None, help="threads for every backend (default: all cores)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per backend after 5 warm-up runs (default 50)")
    p.add_argument("--images", type=int, default=8, help="real images cycled through (default 8)")
    p.add_argument("--data", type=Path, default=None, help="where the images come from (default: as for parity)")
    p.add_argument("--split", default="test")
    p.add_argument("--json", type=Path, default=None, help="also write every number here")
    add_contract_args(p)


def print_rows(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_parity(args) -> int:
    from edgeskin.anytime_report import summary_rows, summary_sentences
    from edgeskin.bench_check import find_reference
    from edgeskin.image_sources import resolve_images
    from edgeskin.parity_check import ParityRequest, expand_artifacts, run_parity
    from edgeskin.reports import check_report_folder, exit_rows, table_notes, table_rows, write_reports

    resolve_images(args.data)  # a --data path that does not exist fails before any work
    artifacts = expand_artifacts(args.artifacts)
    reference = find_reference(args.reference, artifacts, required=True, report=_report)
    request = ParityRequest(artifacts=args.artifacts, reference=reference, data=args.data, split=args.split,
                            explain=args.explain, explain_images=args.explain_images, bench=not args.no_bench,
                            bench_runs=args.runs, threads=args.threads, stated=stated_from_args(args))
    first = artifacts[0]
    out = args.out or (first[1].parent if first[1] else first[0].parent) / f"parity-{args.split}"
    check_report_folder(out)  # before minutes of work, not after

    def report(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    run = run_parity(request, report)
    write_reports(run, out)
    print(f"parity vs PyTorch ({run.reference.source}) on {len(run.labels)} images of {run.dataset}:")
    print_rows(table_rows(run))
    for note in table_notes(run):
        print(note)
    for check in run.checks:
        if check.divergence:
            print(f"\n{check.path.name}: {check.divergence.explanation}\n{check.divergence.curve()}")
        if check.exit_parity:
            print(f"\n{check.path.name}, exit by exit (each against PyTorch's same exit):")
            print_rows(exit_rows(check))
        if check.anytime:
            print(f"{check.path.name}, anytime on these images:")
            print_rows(summary_rows(check.anytime))
            print("\n".join(summary_sentences(check.anytime)))
    pictures = sorted({p.name.split("-", 1)[0] + "-*.png" if p.name != "accuracy-latency.png" else p.name for p in out.glob("*.png")})
    print(f"\nreport: {out / 'report.md'} (+ report.json, {', '.join(pictures)})")
    for check in run.failed:
        print(f"FAILED {check.path}: {'; '.join(check.failures)}", file=sys.stderr)
    return 1 if run.failed else 0


def cmd_bench(args) -> int:
    from edgeskin.bench_check import BenchRequest, run_bench
    from edgeskin.benchmark import latency_caveat, latency_mark, peak_text
    from edgeskin.noise import ratio_text

    request = BenchRequest(args.artifacts, reference=args.reference, data=args.data, split=args.split, images=args.images,
                           runs=args.runs, threads=args.threads, stated=stated_from_args(args))
    run = run_bench(request, report=_report)
    env, base, results = run.environment, run.reference, run.artifacts
    print(f"{env['cpu']}, {env['cores']} cores, {run.threads} threads, python {env['python']}; "
          + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()))
    print(f"{run.images} real images from {run.dataset}, cycled; {run.noise.window} rounds of {args.runs // run.noise.window} timed runs "
          "after 5 warm-up (the last rounds of those run), batch 1, one process per backend")
    rows = [["model", "backend", "load s", "first ms", "p50 ms", "p90 ms", "p99 ms", "img/s", "peak RSS MB", "GFLOP",
             "GFLOP/s", "% of peak", "vs PyTorch"]]
    for r in ([base] if base else []) + results:
        ratio = "1.00x" if r is base else ratio_text(r.ratio_to_reference, r.ratio_stable)
        rows.append([r.name, r.backend, f"{r.import_seconds + r.load_seconds:.3f}", f"{r.first_inference_ms:.1f}",
                     f"{r.p50_ms:.2f}{latency_mark(r.backend)}", f"{r.p90_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.throughput_per_s:.1f}",
                     f"{r.peak_rss_mb:.0f}", f"{r.gflop:.2f}" if r.gflop else "-", f"{r.gflops_per_s:.0f}" if r.gflop else "-",
                     peak_text(r, run.noise), ratio])
    print_rows(rows)
    caveat = latency_caveat([r.backend for r in results])
    if caveat:
        print(caveat)
    print(f"GFLOP: matmul work per image, counted from each graph (PyTorch: its FLOP counter); % of peak: GFLOP/s at p50 "
          f"against {run.peak.sentence()}")
    print(run.noise.sentence())
    if args.json:
        args.json.write_text(json.dumps(run.to_dict(), indent=2) + "\n")
    return 0
