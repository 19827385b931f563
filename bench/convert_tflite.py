"""Per recipe: conversion time, size, and latency as a ratio to PyTorch eager fp32, in one run.

Same machine, same 8 real inputs, same thread count for every row, each backend in its own
process (edgeskin.benchmark, the code behind `edgeskin bench`); median of N timed runs after warm-up. Models: the bundled demo student, and skindistilvit-b6 (the paper's student size) with
seeded weights. Usage: python bench/convert_tflite.py [--models demo,b6] [--runs 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from edgeskin.checkpoint import save_checkpoint
from edgeskin.converters.pipeline import ConvertRequest, convert
from edgeskin.converters.recipes import recipes_for
from edgeskin.image_sources import bundled_images
from edgeskin.model_loading import DEMO_CHECKPOINT, load_checkpoint
from edgeskin.models import build_model, config_for, seeded_weights


def checkpoint_for(name: str, folder: Path) -> Path:
    if name == "demo":
        return DEMO_CHECKPOINT
    torch.manual_seed(0)
    model = seeded_weights(build_model(config_for(f"skindistilvit-{name}")), seed=0)
    return save_checkpoint(model, folder / f"{name}.safetensors", {"note": "seeded weights for benchmarking"})


def bench_model(name: str, args, folder: Path) -> list[dict]:
    loaded = load_checkpoint(checkpoint_for(name, folder))
    request = ConvertRequest(loaded=loaded, recipes=recipes_for("tflite", args.recipes), out=folder / f"dist-{name}",
                             verdict_data=args.data)
    print(f"[{name}] converting {loaded.config.arch} ...", file=sys.stderr, flush=True)
    _, manifest, checks = convert(request, report=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    from edgeskin.benchmark import benchmark
    from edgeskin.data import load_images, open_dataset

    pixels = load_images(open_dataset(bundled_images(), "test"), loaded.config.preprocess, progress=False)[:8]
    files = [check.path for check in checks]
    torch_row, timed = benchmark(files, (loaded.source, None), pixels, args.threads, args.runs)
    rows = [{"model": loaded.config.arch, "recipe": "pytorch eager fp32", "convert_s": None, "mb": None,
             "p50_ms": torch_row.p50_ms, "ratio": 1.0, "agreement": None}]
    for check, entry, latency in zip(checks, manifest.artifacts, timed, strict=True):
        rows.append({"model": loaded.config.arch, "recipe": f"tflite {check.recipe}", "convert_s": entry.conversion_seconds,
                     "mb": check.bytes / 1e6, "p50_ms": latency.p50_ms, "ratio": latency.ratio_to_reference,
                     "agreement": check.parity.agreement, "verdict": check.verdict.upper() if not check.passed else "pass"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,b6", help="demo and/or registry widths+depths like b6, ti12")
    parser.add_argument("--recipes", default="fp32,fp16,dynamic,int8-mixed")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, "
          f"torch {torch.__version__}, median of {args.runs} runs after 5 warm-up")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for name in args.models.split(",") for row in bench_model(name.strip(), args, Path(tmp))]
    print(f"{'model':<20} {'artifact':<20} {'convert s':>9} {'size MB':>8} {'p50 ms':>8} {'vs torch':>9} {'agree':>7}  verdict")
    for r in rows:
        convert_s = "-" if r["convert_s"] is None else f"{r['convert_s']:.1f}"
        size = "-" if r["mb"] is None else f"{r['mb']:.2f}"
        agree = "-" if r["agreement"] is None else f"{r['agreement']:.1%}"
        print(f"{r['model']:<20} {r['recipe']:<20} {convert_s:>9} {size:>8} {r['p50_ms']:>8.2f} {r['ratio']:>8.2f}x {agree:>7}  {r.get('verdict', '')}")
    print("convert s: fp32, fp16 and dynamic come from one onnx2tf run, so they share its time; int8 recipes add calibration.")


if __name__ == "__main__":
    main()
