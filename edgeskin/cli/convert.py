"""`edgeskin convert` and `edgeskin predict`: the product's main job, as commands."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from edgeskin.cli.args import add_contract_args, stated_from_args
from edgeskin.runtime.anytime import ANYTIME_HELP


def add_parsers(sub) -> None:
    p = sub.add_parser("convert", help="checkpoint -> verified TFLite / ONNX / Core ML artifacts + manifest")
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint (default: the bundled demo student)")
    p.add_argument("--target", default="tflite", help="tflite, onnx, coreml or all (default: tflite)")
    p.add_argument("--recipes", default=None, help="comma list of recipes (tflite: fp32,fp16,dynamic,int8-mixed by default, "
                   "int8 and w8a16 on request; onnx: fp32; coreml: fp32,fp16,w8,palettize6,palettize4, default all)")
    p.add_argument("--route", default="litert", choices=("litert", "onnx2tf"),
                   help="TFLite converter: litert (litert-torch + ai-edge-quantizer, default) or onnx2tf (its own "
                   "environment: make install-onnx2tf)")
    p.add_argument("--exit", type=int, default=None, help="exit head to export (default: the final head)")
    p.add_argument("--exits", default=None, help="anytime files instead: 'all' or exit blocks like 2,4,6; one file per "
                   "recipe with a stage per exit, so the device can stop early (edgeskin-pi --anytime): a .tflite with a "
                   "signature per stage, or a multifunction .mlpackage (iOS 18 / macOS 15)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: dist/<model>)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--model-version", default=None, help="version the artifacts carry (Core ML versionString, TFLite "
                   "Metadata; default: the first 12 hex digits of the checkpoint's sha256)")
    p.add_argument("--data", type=Path, default=None, help="real images for the parity verdict (default: $EDGESKIN_DATA, else ../shared/data/isic-public beside a checkout, else the bundled CC0 set)")
    p.add_argument("--split", default="val", help="split for the verdict (default: val)")
    p.add_argument("--calib", type=Path, default=None, help="calibration images for int8 (default: the --data folder when given, else as for --data)")
    p.add_argument("--calib-split", default="train", help="calibration split, disjoint from the verdict split (default: train)")
    p.add_argument("--calib-count", type=int, default=100, help="calibration images, class-stratified (default 100)")
    add_contract_args(p)

    p = sub.add_parser("predict", help="classify images with an artifact (torch-free runtime)")
    p.add_argument("artifact", type=Path)
    p.add_argument("images", nargs="+", type=Path, help="image files or folders (searched recursively, hidden files skipped)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="one JSON object per line; the last line is the summary")
    p.add_argument("--strict", action="store_true", help="hidden and non-image files inside folders are failures, not skipped")
    p.add_argument("--anytime", default=None, metavar="THRESHOLD|auto", help=ANYTIME_HELP)


def _abandon_on_signal() -> None:
    """Ctrl-C / SIGTERM: delete the half-written conversion and exit 130, whatever is running."""
    from edgeskin.converters.artifacts import abandon_staging

    def handler(signum, frame):
        abandon_staging()
        print(f"edgeskin: interrupted ({signal.Signals(signum).name}): conversion abandoned, nothing written", file=sys.stderr)
        os._exit(130)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_convert(args) -> int:
    """Parsing and printing around edgeskin.convert (the Python API does the work)."""
    from edgeskin import api
    from edgeskin.model_loading import DEMO_CHECKPOINT, load_checkpoint
    from edgeskin.progress import Console

    loaded = load_checkpoint(args.checkpoint or DEMO_CHECKPOINT, stated=stated_from_args(args))
    _abandon_on_signal()

    conversion = api.convert(loaded, target=args.target, recipes=args.recipes, out=args.out, data=args.data, split=args.split,
                             calib=args.calib, calib_split=args.calib_split, calib_count=args.calib_count, exit=args.exit,
                             force=args.force, report=Console(), route=args.route,
                             model_version=args.model_version, exits=args.exits)
    print_table(conversion)
    failed = [a for a in conversion.artifacts if a.verdict != "pass"]
    for a in failed:
        print(f"FAILED {a.recipe} ({a.target}): {'; '.join(a.failures)}", file=sys.stderr)
    return 1 if failed else 0


def print_table(conversion) -> None:
    verdict = conversion.manifest.verdict_images
    anytime = " (anytime files: the last exit's numbers; every exit is judged)" if any(a.exit_parity for a in conversion.artifacts) else ""
    print(f"parity vs PyTorch, verdict: {verdict.count} images of {verdict.source}{anytime}:")
    header = (f"{'target':<7} {'recipe':<11} {'route':<13} {'convert s':>9} {'size':>9} {'max|dlogit|':>12} {'cosine':>9} "
              f"{'top-1 agree':>12} {'BMA ref/art':>14}  verdict")
    print(header)
    print("-" * len(header))
    for a, entry in zip(conversion.artifacts, conversion.manifest.artifacts, strict=True):
        p = a.parity
        print(f"{a.target:<7} {a.recipe:<11} {entry.route or '-':<13} {entry.conversion_seconds:>9.1f} {a.bytes / 1e6:>7.2f}MB "
              f"{p.max_abs_logit_diff:>12.3g} {p.cosine_mean:>9.5f} {p.agreement:>11.1%} {p.reference_bma:>6.3f}/{p.artifact_bma:<6.3f}  "
              f"{a.verdict if a.passed else 'FAIL'}" + (" (exits: see below)" if p.passed and not a.passed else ""))


def cmd_predict(args) -> int:
    from edgeskin.runtime.anytime import policy_option
    from edgeskin.runtime.classify import Tally, classify, quiet_decoder_warnings
    from edgeskin.runtime.inputs import expand_inputs
    from edgeskin.runtime.predictor import load
    from edgeskin.runtime.reporting import result_line, result_record

    quiet_decoder_warnings()
    predictor = load(args.artifact, threads=args.threads)
    policy = policy_option(predictor, args.anytime)
    inputs = expand_inputs(args.images, args.strict)
    tally = Tally(skipped=inputs.skipped_note())
    # the loop and the folder expansion of edgeskin-pi, so both report the same files the same way
    for item in classify(predictor, inputs.sources(), args.top_k, policy=policy):
        tally.add(item)
        print(json.dumps(result_record(item.name, item.result)) if args.json else result_line(item.name, item.result), flush=True)
    print(json.dumps({"summary": tally.counts()}) if args.json else tally.summary_line())
    return 1 if tally.failures else 0
