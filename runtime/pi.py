"""`edgeskin-pi`: classify image files, folders or camera frames on a Raspberry Pi.

    edgeskin-pi MODEL.tflite IMAGES_OR_FOLDERS... [--top-k 3] [--threads N] [--json] [--crop-border]
    edgeskin-pi MODEL.tflite --camera [--every SECONDS] [--frames N]

Needs numpy, Pillow and a TFLite runtime only (`pip install "edgeskin[pi]"`): labels, the input
contract and the preprocessing come from the edgeskin metadata embedded in the model file.
A bad image is reported on its own line and the run goes on. Exit code: 0 when every image was
classified, 1 when some failed, 2 for a usage or model error (one line, no traceback).
Start-up matters on a Pi: this module imports nothing it does not use (no torch, no TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from .anytime import ANYTIME_HELP, policy_option
from .classify import Classified, Tally, classify, quiet_decoder_warnings
from .errors import EdgeskinError
from .inputs import expand_inputs
from .reporting import problem_of, result_record

PROG = "edgeskin-pi"
CAMERA_SIZE = (1024, 768)
NO_PICAMERA2 = ("--camera: picamera2 is not installed; on Raspberry Pi OS: sudo apt install python3-picamera2, "
                "and make the venv with --system-site-packages so it can see it")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Classify skin-lesion images with an edgeskin .tflite model "
                                "(numpy + Pillow + a TFLite runtime; no torch, no TensorFlow).")
    p.add_argument("model", type=Path, help="a .tflite file written by `edgeskin convert`")
    p.add_argument("inputs", nargs="*", type=Path, help="image files or folders (every file inside, sorted)")
    p.add_argument("--top-k", type=int, default=3, help="classes to show per image (default 3)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="one JSON object per line; the last line is the summary")
    p.add_argument("--raw", action="store_true", help="with --json: every class probability (and logits) at full precision")
    p.add_argument("--strict", action="store_true", help="hidden and non-image files inside folders are failures, not skipped")
    p.add_argument("--crop-border", action="store_true", help="crop the black dermatoscope border first (paper's step)")
    p.add_argument("--anytime", default=None, metavar="THRESHOLD|auto", help=ANYTIME_HELP)
    p.add_argument("--camera", action="store_true", help="classify frames from the Pi camera (needs picamera2)")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS", help="--camera: a frame every SECONDS until Ctrl-C")
    p.add_argument("--frames", type=int, default=None, help="--camera: stop after this many frames (default 1, or endless with --every)")
    return p


def _check_usage(parser: argparse.ArgumentParser, args) -> None:
    if args.camera == bool(args.inputs):
        parser.error("give image files/folders, or --camera (not both)")
    if not args.camera and (args.every is not None or args.frames is not None):
        parser.error("--every and --frames need --camera")
    for name, value, low in (("--top-k", args.top_k, 1), ("--threads", args.threads, 1), ("--frames", args.frames, 1)):
        if value is not None and value < low:
            parser.error(f"{name} must be at least {low}")
    if args.every is not None and args.every <= 0:
        parser.error("--every must be positive")


def _open_camera():
    """A started Picamera2, or EdgeskinError when picamera2 (or a camera) is missing."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise EdgeskinError(NO_PICAMERA2) from None
    try:
        camera = Picamera2()
        # picamera2 names formats like DRM: "BGR888" arrays are in [R, G, B] order, "RGB888" in [B, G, R]
        camera.configure(camera.create_still_configuration(main={"size": CAMERA_SIZE, "format": "BGR888"}))
        camera.start()
    except Exception as exc:  # libcamera raises RuntimeError/IndexError/OSError when no camera is attached
        raise EdgeskinError(f"--camera: cannot start the camera ({type(exc).__name__}: {exc})") from None
    return camera


def _camera_frames(camera, every: float | None, frames: int | None):
    """(name, RGB array) for each captured frame, one every `every` seconds."""
    limit = frames or (None if every else 1)
    count, next_at = 0, time.monotonic()
    try:
        while limit is None or count < limit:
            if count:
                time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = time.monotonic() + (every or 0.0)
            count += 1
            yield f"camera-{count:04d} {time.strftime('%H:%M:%S')}", camera.capture_array("main")
    finally:
        camera.stop()
        camera.close()


class _Table:
    """Aligned text rows, printed as results arrive (a camera run never ends on its own)."""

    def __init__(self, width: int, top_k: int) -> None:
        self.width = max(12, min(width, 60))
        print(f"{'image':<{self.width}}  {'label':<6} {'prob':>6}  {f'top-{top_k}':<{top_k * 12}} {'infer ms':>9} {'total ms':>9}")

    def row(self, item: Classified) -> None:
        name, result = item.name, item.result
        shown = name if len(name) <= self.width else "..." + name[-(self.width - 3):]
        if item.failed:
            print(f"{shown:<{self.width}}  error: {problem_of(result, name)}", flush=True)
            return
        ranked = "  ".join(f"{n} {p:.3f}" for n, p in result.top_k)
        print(f"{shown:<{self.width}}  {result.label:<6} {result.probability:>6.3f}  {ranked:<{len(result.top_k) * 12}} "
              f"{item.infer_ms:>9.1f} {item.total_ms:>9.1f}" + (f"  exit {result.exit}" if getattr(result, "exit", None) else ""),
              flush=True)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _summary(predictor, tally: Tally) -> dict:
    meta = predictor.metadata
    return {**tally.counts(), "p50_latency_ms": _rounded(tally.p50_infer_ms), "mean_latency_ms": _rounded(tally.mean_infer_ms),
            "p50_total_ms": _rounded(tally.p50_total_ms),
            "model": str(predictor.path), "recipe": meta.recipe, "runtime": predictor.runtime,
            "threads": predictor.backend.threads,
            "outputs": [{"name": n, "dtype": s.dtype, "scale": s.scale, "zero_point": s.zero_point}
                        for n, s in zip(meta.outputs, predictor.output_specs, strict=True)]}


def run(args) -> int:
    """The command after argument checks; raises EdgeskinError for usage/model problems."""
    from .predictor import load

    quiet_decoder_warnings()
    camera = _open_camera() if args.camera else None  # fail before the (slower) model load
    try:
        predictor = load(args.model, threads=args.threads)
    except BaseException:
        if camera is not None:
            camera.close()
        raise
    policy = policy_option(predictor, args.anytime)
    config = predictor.preprocess_config
    if args.crop_border:
        config = replace(config, crop_border=True)
    tally, interrupted = Tally(), False
    if camera is not None:
        sources, width = _camera_frames(camera, args.every, args.frames), 22
    else:
        inputs = expand_inputs(args.inputs, args.strict)
        sources, tally.skipped = inputs.sources(), inputs.skipped_note()
        width = max((len(name) for name, _ in sources), default=12)
    table = None
    if not args.json:
        meta = predictor.metadata
        print(f"{args.model}: {meta.model} exit {meta.exit}, recipe {meta.recipe}, {len(meta.class_names)} classes; "
              f"{predictor.runtime}, {predictor.backend.threads} threads")
        table = _Table(width, args.top_k)
    try:
        for item in classify(predictor, sources, args.top_k, config, policy):
            tally.add(item)
            if table is None:
                print(json.dumps(result_record(item.name, item.result, item.infer_ms, raw=args.raw)), flush=True)
            else:
                table.row(item)
    except KeyboardInterrupt:
        interrupted = camera is None  # Ctrl-C is how a camera run with --every ends
    summary = _summary(predictor, tally)
    if table is None:
        print(json.dumps({"summary": summary}))
    else:
        print(tally.summary_line())
    return 130 if interrupted else (1 if tally.failures else 0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_usage(parser, args)
    try:
        return run(args)
    except EdgeskinError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
