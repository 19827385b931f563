"""`edgeskin eval` and `edgeskin info`: score a checkpoint on a split, describe a checkpoint or artifact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeskin.cli.args import add_contract_args, stated_from_args
from edgeskin.cli.training import _threads


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
    from edgeskin.data import load_images, open_dataset
    from edgeskin.evaluate import evaluate
    from edgeskin.image_sources import resolve_images
    from edgeskin.model_loading import load_checkpoint

    _threads(None)
    source = resolve_images(args.data)
    loaded = load_checkpoint(args.checkpoint, stated=stated_from_args(args))
    config = loaded.config
    dataset = open_dataset(source, args.split, config.class_names)
    images = load_images(dataset, config.preprocess)
    report = evaluate(loaded.model, images, dataset.labels, exit=args.exit, progress=True)
    print(f"{config.arch} on {dataset.name} ({report.n} images, exit {args.exit or config.depth})")
    print(f"BMA {report.bma:.4f}   accuracy {report.accuracy:.4f}")
    print(f"melanoma sensitivity {report.melanoma_sensitivity:.4f}   specificity {report.melanoma_specificity:.4f}")
    print(f"{'class':<6} {'recall':>7} {'n':>5}")
    for name in config.class_names:
        recall = report.per_class_recall[name]
        print(f"{name:<6} {'-' if recall != recall else f'{recall:.4f}':>7} {report.support[name]:>5}")
    per_exit = {}
    if args.all_exits:
        print(f"{'exit':<6} {'BMA':>7} {'acc':>7}")
        for block in config.exit_blocks:
            per_exit[block] = evaluate(loaded.model, images, dataset.labels, exit=block)
            print(f"{block:<6} {per_exit[block].bma:>7.4f} {per_exit[block].accuracy:>7.4f}")
    if args.json:
        payload = {"checkpoint": str(args.checkpoint), "checkpoint_sha256": loaded.source_sha256, "data": dataset.name,
                   "exit": args.exit or config.depth, **report.to_dict(),
                   "per_exit_bma": {str(k): v.bma for k, v in per_exit.items()}}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


def _artifact_info(path: Path, as_json: bool) -> int:
    """The contract an artifact carries: classes, input, preprocessing, normalization, outputs."""
    from dataclasses import asdict

    from edgeskin.runtime.predictor import peek_metadata

    meta = peek_metadata(path)
    if as_json:
        print(json.dumps({"artifact": str(path), **asdict(meta)}, indent=2))
        return 0
    norm = meta.normalization or {}
    print(f"{path}  ({meta.target} {meta.recipe}, {meta.model} exit {meta.exit})")
    print(f"classes    {', '.join(meta.class_names)}")
    print(f"input      {meta.input.layout} {'x'.join(map(str, meta.input.shape))} {meta.input.dtype}, RGB 0..255; "
          f"resize bilinear; crop_border={meta.preprocess.get('crop_border', False)}")
    if norm:
        print(f"normalize  mean {tuple(norm['mean'])}, std {tuple(norm['std'])} ({norm.get('applied', 'inside the graph')})")
    print(f"outputs    {', '.join(f'{i}: {name}' for i, name in enumerate(meta.outputs))}")
    return 0


def cmd_info(args) -> int:
    from edgeskin.model_loading import load_checkpoint
    from edgeskin.runtime.metadata import ARTIFACT_SUFFIXES

    if Path(args.checkpoint).suffix in ARTIFACT_SUFFIXES:
        return _artifact_info(Path(args.checkpoint), args.json)
    loaded = load_checkpoint(args.checkpoint, stated=stated_from_args(args))
    params = sum(p.numel() for p in loaded.model.parameters())
    info = {"checkpoint": str(loaded.source), "format": loaded.source_format, "sha256": loaded.source_sha256,
            "parameters": params, "config": loaded.config.to_dict(), "provenance": loaded.provenance}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    c = loaded.config
    print(f"{loaded.source}  ({loaded.source_format}, sha256 {loaded.source_sha256[:16]}...)")
    print(f"model      {c.arch}: {c.depth} blocks x {c.embed_dim} wide, {c.num_heads} heads, {params / 1e6:.2f}M parameters")
    print(f"exits      after blocks {', '.join(map(str, c.exit_blocks))}")
    print(f"classes    {', '.join(c.class_names)}")
    print(f"input      {c.img_size}x{c.img_size} RGB 0..255, normalized inside (mean {c.mean}, std {c.std}); crop_border={c.preprocess.crop_border}")
    for key in ("command", "val_bma", "epoch", "teacher_sha256"):
        if key in loaded.provenance:
            print(f"{key:<10} {loaded.provenance[key]}")
    return 0

