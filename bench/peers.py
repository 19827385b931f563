"""edgeskin and timmx side by side: the same demo student converted by both, measured in one run.

timmx (PyPI, "exporting timm models": ONNX, LiteRT, Core ML, ExecuTorch) is the closest public
exporter of timm models. It runs in its own environment (`make install-timmx`: .venv-timmx).
It takes a registered timm name, so the student's inner timm ViT goes to it as a local-dir model
(a timm config.json with the student's depth and width) plus its state dict (--checkpoint), with
normalization inside the graph and 0..255 pixels in (--normalize, mean/std x 255), as edgeskin's
files take; LiteRT with --nhwc-input. Nothing is downloaded (no --pretrained).

Per tool and format: conversion wall time (each tool's own checks included: timmx's one random
input, edgeskin's verdict images), size, max|dlogit| and top-1 agreement against PyTorch on real
images (Core ML on Linux: edgeskin's numpy checker runs both tools' packages), then p50 latency
and ratio to PyTorch for the .tflite and .onnx files in one interleaved timing run with its noise
verdict (edgeskin.benchmark; a timmx file is run by the same runtime as edgeskin's).
Usage: python bench/peers.py [--formats litert,onnx,coreml] [--split test] [--runs 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgeskin
from edgeskin.converters.worker_env import WorkerEnvironment
from edgeskin.data import load_images, open_dataset
from edgeskin.evaluate import predict_logits
from edgeskin.image_sources import resolve_images
from edgeskin.model_loading import DEMO_CHECKPOINT, load_checkpoint
from edgeskin.noise import ratio_text
from edgeskin.runtime.predictor import load as load_artifact

TIMMX = WorkerEnvironment("EDGESKIN_TIMMX_PYTHON", ".venv-timmx", "bench/peers.py", "install-timmx", "timmx 0.10.1")
# timmx format -> (suffix, input layout of its file, extra timmx flags, edgeskin --target)
FORMATS = {"litert": (".tflite", "NHWC", ["--nhwc-input"], "tflite"), "onnx": (".onnx", "NCHW", [], "onnx"),
           "coreml": (".mlpackage", "NCHW", [], "coreml")}
CHECKS = {"timmx": "one random input through the file and PyTorch: cosine >= 0.9 (else exit 2), max |diff| printed; "
                   "Core ML on Linux: metadata only",
          "edgeskin": "real images through the file and PyTorch: the recipe's gate (top-1 agreement, max |dlogit|, BMA "
                      "loss), failing files moved to failed/; Core ML run by its numpy checker; manifest with sha256"}


@dataclass
class Converted:
    tool: str
    format: str
    path: Path
    seconds: float
    layout: str

    @property
    def megabytes(self) -> float:
        files = [self.path] if self.path.is_file() else [f for f in self.path.rglob("*") if f.is_file()]
        return sum(f.stat().st_size for f in files) / 1e6


def timm_model_folder(loaded, folder: Path) -> tuple[Path, Path]:
    """A timm local-dir model (config.json) with the student's shape, and its state dict."""
    from safetensors.torch import save_file

    config, vit = loaded.config, loaded.model.vit
    args = {"img_size": config.img_size, "patch_size": config.patch_size, "embed_dim": config.embed_dim, "depth": config.depth,
            "num_heads": config.num_heads, "mlp_ratio": config.mlp_ratio, "qkv_bias": config.qkv_bias}
    if config.layer_norm_eps != 1e-6:  # timm's ViT default; a config.json cannot change it
        raise SystemExit(f"{config.arch}: LayerNorm eps {config.layer_norm_eps} is not timm's 1e-6; timmx would build another network")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "architecture": "vit_tiny_patch16_224", "num_classes": config.num_classes, "model_args": args,
        "pretrained_cfg": {"input_size": [3, config.img_size, config.img_size], "mean": list(config.mean), "std": list(config.std),
                           "num_classes": config.num_classes, "interpolation": "bilinear", "crop_pct": 1.0,
                           "first_conv": "patch_embed.proj", "classifier": "head"}}, indent=1))
    checkpoint = folder.parent / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(checkpoint))
    return folder, checkpoint


def export_timmx(fmt: str, model: Path, checkpoint: Path, loaded, out: Path) -> Converted:
    suffix, layout, extra, _ = FORMATS[fmt]
    path = out / f"{loaded.config.arch}-timmx{suffix}"
    scaled = lambda values: [repr(255 * v) for v in values]  # noqa: E731 - normalization of 0..255 pixels
    command = [str(TIMMX.python().parent / "timmx"), "export", fmt, f"local-dir:{model}", "--checkpoint", str(checkpoint),
               "--normalize", "--mean", *scaled(loaded.config.mean), "--std", *scaled(loaded.config.std), "--output", str(path), *extra]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    (out / f"timmx-{fmt}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"timmx export {fmt} failed (exit {done.returncode}; log: {out / f'timmx-{fmt}.log'})")
    return Converted("timmx", fmt, path, seconds, layout)


def convert_edgeskin(fmt: str, loaded, data, out: Path) -> Converted:
    began = time.perf_counter()
    result = edgeskin.convert(loaded, target=FORMATS[fmt][3], recipes=["fp32"], out=out / f"edgeskin-{fmt}", data=data)
    return Converted("edgeskin", fmt, result.artifacts[0].path, time.perf_counter() - began, FORMATS[fmt][1])


def logits_of(item: Converted, pixels: np.ndarray) -> np.ndarray:
    """The file's logits on every image: edgeskin's through its predictor, timmx's by the same runtimes."""
    if item.tool == "edgeskin":
        predictor = load_artifact(item.path, coreml_checker=True)
        return np.stack([predictor.run(p)["logits"] for p in pixels])
    if item.format == "coreml":  # edgeskin's checker runs any ML Program, so a timmx package is checked on Linux too
        from edgeskin.runtime.coreml import MilExecutor
        from edgeskin.runtime.mlpackage import read_package

        package = read_package(item.path)
        executor, (name,) = MilExecutor(package), package.program.inputs
        return np.stack([next(iter(executor.run({name: p.transpose(2, 0, 1)[None].astype(np.float32)}).values())).reshape(-1)
                         for p in pixels])
    from edgeskin.benchmark import foreign_runner

    run, _ = foreign_runner(item.path, item.layout, None)
    return np.stack([run(p)[0].reshape(-1) for p in pixels])


def main() -> None:
    from edgeskin.benchmark import benchmark

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--formats", default="litert,onnx,coreml")
    parser.add_argument("--data", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    TIMMX.python()  # one line on how to build the environment, before any work
    loaded = load_checkpoint(args.checkpoint)
    dataset = open_dataset(resolve_images(args.data), args.split)
    pixels = load_images(dataset, loaded.config.preprocess)
    reference = predict_logits(loaded.model, pixels, progress=True)
    with tempfile.TemporaryDirectory(prefix="edgeskin-peers-") as tmp:
        out = Path(tmp)
        model, checkpoint = timm_model_folder(loaded, out / "timm-model")
        items = []
        for fmt in args.formats.split(","):
            print(f"[{fmt}] timmx export, then edgeskin convert ...", file=sys.stderr, flush=True)
            items += [export_timmx(fmt, model, checkpoint, loaded, out), convert_edgeskin(fmt, loaded, args.data, out)]
        quality = {}
        for item in items:
            logits = logits_of(item, pixels)
            quality[id(item)] = (float(np.abs(logits - reference).max()), float((logits.argmax(1) == reference.argmax(1)).mean()))
        timed = [i for i in items if i.format != "coreml"]  # Core ML's speed is a phone's, not this machine's
        torch_row, rows, noise, _ = benchmark([i.path for i in timed if i.tool == "edgeskin"], (loaded.source, None), pixels[:8],
                                              args.threads, args.runs, progress=lambda m: print(f"  {m}", file=sys.stderr),
                                              foreign=[(i.path, i.layout) for i in timed if i.tool == "timmx"])
        latency = dict(zip([i.path.name for i in timed if i.tool == "edgeskin"] + [i.path.name for i in timed if i.tool == "timmx"],
                           rows, strict=True))
        print(f"# {loaded.config.arch} ({loaded.source.name}); {len(pixels)} images of {dataset.name}; {args.threads} threads; "
              f"PyTorch p50 {torch_row.p50_ms:.2f} ms")
        print("| tool | format | convert s | MB | max\\|dlogit\\| | top-1 agreement | p50 ms | x PyTorch |")
        print("|---|---|---|---|---|---|---|---|")
        for item in items:
            dlogit, agreement = quality[id(item)]
            row = latency.get(item.path.name)
            timing = (f"{row.p50_ms:.2f} | {ratio_text(row.ratio_to_reference, row.ratio_stable)}" if row
                      else "- | - (Core ML: time it on a Mac or iPhone)")
            print(f"| {item.tool} | {item.format} | {item.seconds:.1f} | {item.megabytes:.2f} | {dlogit:.2g} | {agreement:.1%} | {timing} |")
        print(noise.sentence())
        for tool, text in CHECKS.items():
            print(f"{tool} checks: {text}")


if __name__ == "__main__":
    main()
