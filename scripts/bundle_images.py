"""Build the bundled CC0 image set (edgeskin/assets/isic-cc0) from ../shared/data/isic-public.

The set lets `make demo` and the test suite calibrate and verify int8 artifacts without the larger,
non-redistributable folder. Only ISIC Archive ids ISIC_0000000-ISIC_0000556 are taken (CC0; the
source README's licence section); every chosen file is checked against that range. The 180x180
train/val images keep their original bytes; the full-resolution test images are downscaled so the
whole set stays under 3 MB while still exercising a real resize.

Splits of the bundled set (all disjoint):
  train  96 images (48 MEL, 48 NV) from the source's train split: calibration only
  val    the source's 29 CC0 val images + 11 CC0 test images: convert's verdict
  test   the other 49 CC0 test images (the 16 former samples among them): parity, predict, demos
The CC0 range holds only MEL and NV images in this source, so the set has those two classes.

    python scripts/bundle_images.py [--data ../shared/data/isic-public] [--out edgeskin/assets/isic-cc0]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CC0_ID = re.compile(r"^ISIC_(\d{7})\.jpg$")
CC0_LAST = 556
TRAIN_PER_CLASS = 48
TEST_INTO_VAL = {"MEL": 6, "NV": 5}
FORMER_SAMPLES = {"ISIC_0000002", "ISIC_0000013", "ISIC_0000015", "ISIC_0000066", "ISIC_0000074", "ISIC_0000170",
                  "ISIC_0000209", "ISIC_0000253", "ISIC_0000278", "ISIC_0000298", "ISIC_0000330", "ISIC_0000466",
                  "ISIC_0000470", "ISIC_0000528", "ISIC_0000538", "ISIC_0000548"}
MAX_SIDE = 320
SIZE_LIMIT = 3_000_000
SEED = 42


def is_cc0(name: str) -> bool:
    match = CC0_ID.match(name)
    return bool(match) and int(match.group(1)) <= CC0_LAST


def choose(rows: list[dict]) -> list[tuple[dict, str]]:
    """(source row, bundled split) for every image taken, in a fixed seeded order."""
    rng = np.random.default_rng(SEED)

    def pick(candidates: list[dict], count: int) -> list[dict]:
        order = rng.permutation(len(candidates))[:count]
        return sorted((candidates[i] for i in order), key=lambda r: r["image"])

    chosen = []
    for label in ("MEL", "NV"):
        train = [r for r in rows if r["split"] == "train" and r["label"] == label]
        chosen += [(r, "train") for r in pick(train, TRAIN_PER_CLASS)]
    chosen += [(r, "val") for r in rows if r["split"] == "val"]
    test = [r for r in rows if r["split"] == "test"]
    for label, count in TEST_INTO_VAL.items():
        movable = [r for r in test if r["label"] == label and r["image"][:-4] not in FORMER_SAMPLES]
        moved = pick(movable, count)
        chosen += [(r, "val") for r in moved]
        test = [r for r in test if r not in moved]
    chosen += [(r, "test") for r in test]
    return chosen


def encoded(source: Path) -> tuple[bytes, tuple[int, int]]:
    """Original bytes when already small; else downscaled to MAX_SIDE, re-encoded without metadata."""
    with Image.open(source) as image:
        if max(image.size) <= MAX_SIDE:
            return source.read_bytes(), image.size
        image = image.convert("RGB")
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90, optimize=True)
        return buffer.getvalue(), image.size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "isic-public")
    parser.add_argument("--out", type=Path, default=REPO / "edgeskin" / "assets" / "isic-cc0")
    args = parser.parse_args()
    with open(args.data / "labels.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if is_cc0(r["image"])]
    chosen = choose(rows)
    if args.out.exists():
        shutil.rmtree(args.out)
    (args.out / "images").mkdir(parents=True)
    records, total = [], 0
    for row, split in chosen:
        assert is_cc0(row["image"]), row["image"]  # every file taken is checked, not only the filter
        source = args.data / "images" / row["image"]
        data, (width, height) = encoded(source)
        (args.out / "images" / row["image"]).write_bytes(data)
        total += len(data)
        records.append({"image": row["image"], "label": row["label"], "split": split, "width": width, "height": height,
                        "source_split": row["split"], "source_md5": hashlib.md5(source.read_bytes()).hexdigest()})
    with open(args.out / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    (args.out / "ATTRIBUTION.md").write_text(attribution(records))
    total += sum(p.stat().st_size for p in (args.out / "labels.csv", args.out / "ATTRIBUTION.md"))
    counts = {s: sum(r["split"] == s for r in records) for s in ("train", "val", "test")}
    print(f"{len(records)} images ({counts}), {total / 1e6:.2f} MB -> {args.out}")
    if total > SIZE_LIMIT:
        raise SystemExit(f"bundled set is {total / 1e6:.2f} MB, over the {SIZE_LIMIT / 1e6:.0f} MB limit")
    return 0


def attribution(records: list[dict]) -> str:
    lines = [
        "# Bundled image set: attribution and licence",
        "",
        f"{len(records)} dermoscopy images from the ISIC Archive (International Skin Imaging Collaboration),",
        "https://www.isic-archive.com. Every id is in the range ISIC_0000000-ISIC_0000556, which the ISIC Archive",
        "publishes under CC0 1.0 (public domain dedication). Taken from the project's isic-public set by",
        "`scripts/bundle_images.py`; 180x180 images keep their bytes, larger ones were downscaled to at most",
        f"{MAX_SIDE} px on the long side and re-encoded (JPEG quality 90). The CC0 range of that set holds melanoma (MEL)",
        "and melanocytic nevus (NV) images only.",
        "",
        "Splits: `train` (calibration only), `val` (convert's verdict), `test` (parity, demos); disjoint.",
        "None of these images was used to select the demo model's checkpoint except the 29 `val` images whose",
        "source split is `val`; none was used to train it except the `train` ones.",
        "For demos and tests only; not for clinical use.",
        "",
        "| image | label | split | source split | md5 of the source file |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['image']} | {r['label']} | {r['split']} | {r['source_split']} | {r['source_md5']} |" for r in records]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
