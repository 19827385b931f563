"""`edgeskin eval` and `edgeskin info`: score a checkpoint on a split, describe a checkpoint or artifact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeskin.cli.args import add_contract_args, stated_from_args


def _add_data_args(p: argparse.ArgumentParser, split_default: str | None) -> None:
    p.add_argument("--data", help="dataset: folder with labels.csv + images/, a labels CSV, or an ISIC 2019 folder "
                   "(default: $EDGESKIN_DATA, else ../shared/data/isic-public beside a checkout, else the bundled CC0 set)")
    p.add_argument("--split", default=split_default, help=f"split to use, or 'all' (default: {split_default})")


def add_parsers(sub) -> None:
    p = sub.add_parser("eval", help="balanced multi-class accuracy and more on one split")
    p.add_argument("--checkpoint", required=True)
    add_contract_args(p)
    _add_data_args(p, split_default="test")
    p.add_argument("--exit", type=int, default=None, help="exit block (default: the final head)")
    p.add_argument("--all-exits", action="store_true", help="also print BMA of every exit head (multi-exit models)")
    p.add_argument("--json", type=Path, help="also write the full report as JSON here")

    p = sub.add_parser("info", help="describe a checkpoint or an artifact: its model contract")
    p.add_argument("checkpoint")
    add_contract_args(p)
    p.add_argument("--json", action="store_true")


def cmd_eval(args) -> int:
    from edgeskin.evaluate import evaluate_checkpoint

    run = evaluate_checkpoint(args.checkpoint, args.data, args.split, stated_from_args(args), exit=args.exit,
                              all_exits=args.all_exits, progress=True)
    config, report = run.loaded.config, run.report
    print(f"{config.arch} on {run.dataset} ({report.n} images, exit {run.exit})")
    print(f"BMA {report.bma:.4f}   accuracy {report.accuracy:.4f}")
    print(f"melanoma sensitivity {report.melanoma_sensitivity:.4f}   specificity {report.melanoma_specificity:.4f}")
    print(f"{'class':<6} {'recall':>7} {'n':>5}")
    for name in config.class_names:
        recall = report.per_class_recall[name]
        print(f"{name:<6} {'-' if recall != recall else f'{recall:.4f}':>7} {report.support[name]:>5}")
    if run.per_exit:
        print(f"{'exit':<6} {'BMA':>7} {'acc':>7}")
        for block, exit_report in run.per_exit.items():
            print(f"{block:<6} {exit_report.bma:>7.4f} {exit_report.accuracy:>7.4f}")
    if args.json:
        args.json.write_text(json.dumps(run.to_dict(), indent=2))
    return 0


def _artifact_info(path: Path, as_json: bool) -> int:
    """The contract an artifact carries: classes, input, preprocessing, normalization, outputs."""
    from dataclasses import asdict

    from edgeskin.runtime.formats import read_artifact_metadata
    from edgeskin.runtime.metadata import app_metadata_line, read_tflite_metadata
    from edgeskin.runtime.paths import read_bytes

    meta = read_artifact_metadata(path)
    app = None
    if meta.target == "tflite":  # the file was read and parsed just above: this cannot fail on it now
        data = read_bytes(path, "model file")
        app = app_metadata_line(data, read_tflite_metadata(data, path), meta)
    if as_json:
        print(json.dumps({"artifact": str(path), **asdict(meta), **({"app_metadata": app} if app else {})}, indent=2))
        return 0
    print(f"{path}  ({meta.target} {meta.recipe}, {meta.model} exit {meta.exit})")
    print(f"tensor     {meta.input.layout} {'x'.join(map(str, meta.input.shape))} {meta.input.dtype}")
    print("\n".join(meta.contract.describe()))
    if meta.stages:
        kind = "a function" if meta.target == "coreml" else "a signature"
        print(f"stages     {', '.join(f'exit_{k}' for k in meta.stages)} ({kind} each: run in order, stop at a confident exit)")
        stored = (meta.anytime or {}).get("thresholds", {})
        if stored:
            print(f"policy     {meta.anytime.get('measure', 'top1')} >= " + ", ".join(f"{v:g} at exit {k}" for k, v in stored.items())
                  + f" (chosen on {meta.anytime.get('chosen_on', '?')})")
    if app:
        print(f"app meta   {app}")
    return 0


def cmd_info(args) -> int:
    from edgeskin.runtime.formats import is_artifact

    if is_artifact(args.checkpoint):  # torch-free: an artifact's info needs only its embedded metadata
        return _artifact_info(Path(args.checkpoint), args.json)
    from edgeskin.model_loading import load_checkpoint

    loaded = load_checkpoint(args.checkpoint, stated=stated_from_args(args))
    info = loaded.describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    c = loaded.config
    print(f"{loaded.source}  ({loaded.source_format}, sha256 {loaded.source_sha256[:16]}...)")
    print(f"model      {c.arch}: {c.depth} blocks x {c.embed_dim} wide, {c.num_heads} heads, {info['parameters'] / 1e6:.2f}M parameters")
    print(f"exits      after blocks {', '.join(map(str, c.exit_blocks))}")
    print("\n".join(c.contract.describe()))
    for key in ("command", "val_bma", "epoch", "teacher_sha256"):
        if key in loaded.provenance:
            print(f"{key:<10} {loaded.provenance[key]}")
    return 0

