"""MediaPipe Tasks' ImageClassifier on every TFLite file of a conversion, against edgeskin's runtime.

Per recipe: top-1 agreement and the largest score difference on the same real images (both fed the
same preprocessed 224x224 pixels), and whether MediaPipe's labels (the file's labels.txt) are the
artifact's classes. A file MediaPipe refuses is a row saying why. Images: --data, else the default
rule (EDGESKIN_DATA, ../shared beside the checkout, the bundled CC0 set), split --split.
Usage: python bench/mediapipe_client.py dist/skindistilvit-ti6 [--data DIR] [--split test] [--images 64]
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

from edgeskin.image_sources import describe, resolve_images
from edgeskin.manifest import MANIFEST, read_manifest
from edgeskin.mediapipe_client import ClientRefused, check_pixels, compare
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.formats import read_artifact_metadata

MINIMUM_IMAGES = 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder `edgeskin convert --target tflite` wrote")
    parser.add_argument("--data", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.folder / MANIFEST)
        entries = [e for e in manifest.artifacts if e.target == "tflite"]
        if not entries:
            raise EdgeskinError.about(args.folder, "its manifest lists no TFLite file")
        source = resolve_images(args.data)
        config = read_artifact_metadata(args.folder / entries[0].file).contract.preprocess  # the same in every file
        pixels = check_pixels(source, args.split, args.images, config)
    except EdgeskinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe("images", len(pixels), f"{source.label}:{args.split}", "the same preprocessed pixels to both"))
    print(f"{'recipe':<12}{'route':<14}{'input':<9}{'top-1 agree':>16}{'max|dscore|':>13}  labels.txt")
    worst = 0
    for entry in entries:
        row = f"{entry.recipe:<12}{entry.route or '':<14}{entry.input['dtype']:<9}"
        try:
            result = compare(args.folder / entry.file, pixels)
        except ClientRefused as exc:
            print(row + f"refused: {exc.reason}")
            worst = max(worst, 1)
            continue
        agreed = round(result.top1_agreement * result.images)
        print(row + f"{f'{result.top1_agreement:.1%} ({agreed}/{result.images})':>16}{result.max_score_difference:>13.2e}  "
              f"{'= classes' if result.labels_match else 'DIFFERS'}")
    print(f"MediaPipe {version('mediapipe')} ImageClassifier (max_results=-1, head 'probabilities') vs edgeskin's "
          "runtime on the same file")
    if len(pixels) < MINIMUM_IMAGES:
        print(f"note: only {len(pixels)} images (< {MINIMUM_IMAGES}) in {source.label}:{args.split}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
