"""Calibration images for int8: a class-stratified, seeded sample of real images.

Drawn from a split disjoint from the one the parity verdicts use (train by default; verdicts
use val or test). The sha256 of every image used goes into the manifest, so a reviewer can
check that no evaluation image was used to calibrate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edgeskin.data import Dataset, load_images, open_dataset
from edgeskin.image_sources import ImageSource
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.preprocess import PreprocessConfig

DEFAULT_COUNT = 100  # global min/max on 100 images: 99.5% top-1 agreement on the test split, 200 gave 99.0% (DESIGN.md section 10)
MIN_IMAGES = 32


@dataclass(frozen=True)
class CalibrationSet:
    pixels: np.ndarray  # uint8 (N, 224, 224, 3)
    image_ids: tuple[str, ...]
    sha256: tuple[str, ...]
    source: str
    seed: int
    missing_classes: tuple[str, ...] = ()

    def summary(self) -> dict:
        return {"source": self.source, "seed": self.seed, "count": len(self.image_ids), "missing_classes": list(self.missing_classes),
                "images": [{"id": i, "sha256": h} for i, h in zip(self.image_ids, self.sha256, strict=True)]}


def stratified_indices(labels: np.ndarray, count: int, seed: int, num_classes: int) -> list[int]:
    """`count` indices with every present class represented and the rest proportional to class size."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in range(num_classes)]
    present = [c for c in range(num_classes) if by_class[c]]
    count = min(count, len(labels))
    quota = {c: 1 for c in present}
    remaining = count - len(present)
    sizes = np.array([len(by_class[c]) - 1 for c in present], dtype=float)
    if remaining > 0 and sizes.sum() > 0:
        extra = np.floor(sizes / sizes.sum() * remaining).astype(int)
        for c, e in zip(present, extra, strict=True):
            quota[c] += int(e)
        leftover = count - sum(quota.values())
        for c in sorted(present, key=lambda c: -(len(by_class[c]) - quota[c])):
            if leftover <= 0:
                break
            if quota[c] < len(by_class[c]):
                quota[c] += 1
                leftover -= 1
    chosen = [i for c in present for i in by_class[c][: quota[c]]]
    return sorted(chosen)


def calibration_set(source: ImageSource, split: str, class_names, preprocess: PreprocessConfig, count: int = DEFAULT_COUNT,
                    seed: int = 0) -> CalibrationSet:
    """A user's images must cover every class; the bundled CC0 set is exempt (that licence range
    holds MEL and NV only), and CalibrationSet.missing_classes says so in every report."""
    dataset = open_dataset(source, split, class_names)
    missing = _check(dataset, count, class_names, require_all_classes=not source.bundled)
    picked = stratified_indices(dataset.labels, count, seed, len(class_names))
    subset = Dataset(dataset.name, tuple(dataset.samples[i] for i in picked), dataset.class_names)
    pixels = load_images(subset, preprocess, progress=False)
    hashes = tuple(hashlib.sha256(s.path.read_bytes()).hexdigest() for s in subset.samples)
    return CalibrationSet(pixels, tuple(s.image_id for s in subset.samples), hashes, dataset.name, seed, missing)


def _check(dataset: Dataset, count: int, class_names, require_all_classes: bool) -> tuple[str, ...]:
    needed = min(count, MIN_IMAGES)
    if len(dataset) < needed:
        raise EdgeskinError(f"{dataset.name}: only {len(dataset)} calibration images; int8 needs at least {needed}")
    missing = [name for name, n in zip(class_names, dataset.class_counts(), strict=True) if n == 0]
    if missing and require_all_classes:
        raise EdgeskinError(f"{dataset.name}: calibration images lack classes {', '.join(missing)} "
                            "(int8 ranges would not cover them; pass data with every class)")
    return tuple(missing)
