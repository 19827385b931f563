"""Per TFLite route and recipe: conversion time, size, agreement, max|dlogit|, latency as a ratio to PyTorch eager, in one run.

Same machine, same 8 real inputs, same thread count for every row; every backend of a model (PyTorch
and both routes' files) in its own process, timed in interleaved rounds by edgeskin.benchmark (the
code behind `edgeskin bench`); median of N timed runs after warm-up. Agreement and max|dlogit| are
the conversion verdict's, on the verdict images (the default image rule: ../shared's val split when
it is beside the checkout). Models: the bundled demo student, a registry size such as b6 (the paper's
student) with seeded weights, or a checkpoint file (a trained b6, your own model). The onnx2tf route
needs its environment (`make install-onnx2tf`).
Usage: python bench/convert_tflite.py [--models demo,b6,runs/b6/best.safetensors] [--routes litert,onnx2tf] [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from edgeskin.benchmark import peak_text
from edgeskin.checkpoint import save_checkpoint
from edgeskin.converters.pipeline import ConvertRequest, convert
from edgeskin.converters.recipes import ROUTE_LABELS, recipes_for
from edgeskin.image_sources import bundled_images
from edgeskin.model_loading import DEMO_CHECKPOINT, load_checkpoint
from edgeskin.models import build_model, config_for, seeded_weights
from edgeskin.noise import ratio_text


def checkpoint_for(name: str, folder: Path) -> Path:
    """The demo, a checkpoint file as given, or seeded weights of a registry size (latency does not
    depend on the weights; the quantized rows' verdicts do, so trained weights are better)."""
    if name == "demo":
        return DEMO_CHECKPOINT
    if Path(name).is_file():
        return Path(name)
    torch.manual_seed(0)
    model = seeded_weights(build_model(config_for(f"skindistilvit-{name}")), seed=0)
    return save_checkpoint(model, folder / f"{name}.safetensors", {"note": "seeded weights for benchmarking"})


def report(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def bench_model(name: str, args, folder: Path) -> list[dict]:
    """Both routes' files of one model, then one timing run over all of them and PyTorch."""
    from edgeskin.benchmark import benchmark
    from edgeskin.data import load_images, open_dataset

    loaded = load_checkpoint(checkpoint_for(name, folder))
    converted = []
    for route in args.routes.split(","):
        request = ConvertRequest(loaded=loaded, recipes=recipes_for("tflite", args.recipes, route),
                                 out=folder / f"dist-{Path(name).stem}-{route}", verdict_data=args.data, route=route)
        print(f"[{name}] {ROUTE_LABELS[route]}: converting {loaded.config.arch} ...", file=sys.stderr, flush=True)
        _, manifest, checks = convert(request, report=report)
        converted += list(zip(checks, manifest.artifacts, strict=True))
    pixels = load_images(open_dataset(bundled_images(), "test"), loaded.config.preprocess, progress=False)[:8]
    torch_row, timed, noise, peak = benchmark([check.path for check, _ in converted], (loaded.source, None), pixels, args.threads,
                                        args.runs, progress=report)
    rows = [{"model": loaded.config.arch, "route": "-", "recipe": "PyTorch eager fp32", "convert_s": None, "mb": None,
             "p50_ms": torch_row.p50_ms, "ratio": 1.0, "stable": True, "agreement": None, "dlogit": None, "latency": torch_row,
             "tail": torch_row.p90_ms / torch_row.p50_ms, "noise": noise, "peak": peak}]
    for (check, entry), latency in zip(converted, timed, strict=True):
        rows.append({"model": loaded.config.arch, "route": entry.route, "recipe": check.recipe,
                     "convert_s": entry.conversion_seconds, "mb": check.bytes / 1e6, "p50_ms": latency.p50_ms,
                     "ratio": latency.ratio_to_reference, "stable": latency.ratio_stable, "agreement": check.parity.agreement,
                     "latency": latency,
                     "dlogit": check.parity.max_abs_logit_diff, "tail": latency.p90_ms / latency.p50_ms, "noise": noise,
                     "verdict": "pass" if check.passed else "FAIL"})
    return rows


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,b6", help="demo, registry widths+depths like b6, ti12 (seeded weights), or checkpoint files")
    parser.add_argument("--routes", default="litert,onnx2tf", help="TFLite routes: litert and/or onnx2tf")
    parser.add_argument("--recipes", default="fp32,fp16,dynamic,int8-mixed")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for name in args.models.split(",") for row in bench_model(name.strip(), args, Path(tmp))]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, "
          f"torch {torch.__version__}, median of {args.runs} runs after 5 warm-up, interleaved rounds")
    print("| model | route | recipe | convert s | MB | agreement | max\\|dlogit\\| | p50 ms | x PyTorch | p90/p50 | GFLOP/s | % of peak "
          "| verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['route']} | {r['recipe']} | {_cell(r['convert_s'], '.1f')} | {_cell(r['mb'], '.2f')} | "
              f"{_cell(r['agreement'], '.1%')} | {_cell(r['dlogit'], '.2g')} | {r['p50_ms']:.2f} | {ratio_text(r['ratio'], r['stable'])} | "
              f"{r['tail']:.2f} | {_cell(r['latency'].gflops_per_s, '.0f')} | {peak_text(r['latency'], r['noise'])} | {r.get('verdict', '-')} |")
    print("convert s: a quantized file's time includes the float conversion it starts from (onnx2tf: fp32, fp16 and "
          "dynamic come from one run). p90/p50: the spread of each backend's timed runs.")
    for row in [r for r in rows if "peak" in r]:  # one per model: its timing run's verdict and the CPU's peak
        print(f"{row['model']}: {row['noise'].sentence()}; {row['peak'].sentence()}")


if __name__ == "__main__":
    main()
