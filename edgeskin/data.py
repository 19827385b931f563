"""Labelled dermoscopy datasets: a labels CSV + image folder, or the official ISIC 2019 layout.

Every image goes through edgeskin.runtime.preprocess, the same function the artifacts' runtime
uses, so training, evaluation and parity all see the same pixels.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeskin.image_sources import ImageSource
from edgeskin.models.config import ISIC_CLASSES, UNKNOWN_CLASS
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.paths import path_problem, regular_file
from edgeskin.runtime.preprocess import PreprocessConfig, preprocess

SPLIT_SEED = 42
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class Sample:
    image_id: str
    path: Path
    label: int


@dataclass(frozen=True)
class Dataset:
    """An ordered list of labelled images from one split."""

    name: str
    samples: tuple[Sample, ...]
    class_names: tuple[str, ...] = ISIC_CLASSES

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.class_names))

    def __len__(self) -> int:
        return len(self.samples)


def open_dataset(source: ImageSource | str | os.PathLike, split: str | None = None, class_names=ISIC_CLASSES) -> Dataset:
    """Open a dataset folder (labels.csv + images/), a labels CSV, or an ISIC 2019 folder.

    split: a value of the CSV's split column; without that column 'train'/'val' are the seeded
    stratified 80/20 split; None or 'all' is every image. The dataset is named '<set>:<split>',
    where <set> is 'bundled' for the packaged CC0 set and the path otherwise.
    """
    if not isinstance(source, ImageSource):
        source = ImageSource(Path(source), "given")
    path, label = source.root, source.label
    if not path.is_dir():
        csv_path, image_dir = regular_file(path, "dataset folder or labels CSV"), _image_dir(path.parent)
    elif os.path.lexists(path / "labels.csv"):
        csv_path, image_dir = path / "labels.csv", _image_dir(path)
    else:
        ground_truth = sorted(path.glob("*GroundTruth*.csv"))
        if not ground_truth:
            raise EdgeskinError.about(path, "no labels.csv and no ISIC 2019 *GroundTruth*.csv found")
        samples = _read_isic2019(ground_truth[0], _isic2019_image_dir(path), class_names)
        return _select_split(path, label, samples, None, split, class_names)
    samples, splits = _read_labels_csv(csv_path, image_dir, class_names)
    return _select_split(csv_path, label, samples, splits, split, class_names)


def _image_dir(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root


def _isic2019_image_dir(root: Path) -> Path:
    named = root / "ISIC_2019_Training_Input"
    return named if named.is_dir() else root


Rows = list[tuple[int, dict[str, str]]]  # (line number, cells by column)


def _open_csv(csv_path: Path) -> tuple[list[str], Rows]:
    """The header and every row with the line it ends on (csv skips blank lines and lets quoted cells
    span lines, so counting rows would name the wrong line); each row has exactly the header's cells."""
    regular_file(csv_path, "CSV file")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, row) for row in reader]
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EdgeskinError.about(csv_path, f"cannot read CSV ({exc})") from None
    repeated = [c for c, n in Counter(columns).items() if n > 1]
    if repeated:
        raise EdgeskinError.about(csv_path, f"the header names column {repeated[0]!r} twice")
    for line, row in rows:  # DictReader fills a short row with None and puts a long row's extra cells under None
        cells = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
        if cells != len(columns):
            raise EdgeskinError.about(csv_path, f"line {line}: {cells} cell{'s' * (cells != 1)}, but the header has {len(columns)}")
    return columns, rows


def _image_name(row: dict[str, str], csv_path: Path, line: int) -> str:
    name = row["image"].strip()
    if not name:
        raise EdgeskinError.about(csv_path, f"line {line}: empty image name")
    return name


def _refuse_duplicates(csv_path: Path, image_ids: list[str]) -> None:
    """An image listed twice would be counted twice by every metric (and with two labels, contradict itself)."""
    repeated = [i for i, n in Counter(image_ids).items() if n > 1]
    if repeated:
        shown = ", ".join(repeated[:5]) + (f" (+{len(repeated) - 5} more)" if len(repeated) > 5 else "")
        ids = "image id" if len(repeated) == 1 else "image ids"
        raise EdgeskinError.about(csv_path, f"{len(repeated)} {ids} listed more than once: {shown}")


def _resolve_image(image_dir: Path, name: str, csv_path: Path, line: int) -> Path:
    candidates = [image_dir / name] + ([image_dir / f"{name}.jpg"] if not Path(name).suffix else [])
    for candidate in candidates:
        if os.path.lexists(candidate):
            problem = path_problem(candidate, "dermoscopy image")  # a FIFO would block the decoder forever
            if problem:
                raise EdgeskinError.about(candidate, f"listed in {csv_path.name} line {line}: {problem}")
            return candidate
    raise EdgeskinError.about(candidates[-1], f"listed in {csv_path.name} line {line} but missing")


def _read_labels_csv(csv_path: Path, image_dir: Path, class_names) -> tuple[list[Sample], list[str] | None]:
    columns, rows = _open_csv(csv_path)
    missing = [c for c in ("image", "label") if c not in columns]
    if missing:
        raise EdgeskinError.about(csv_path, f"missing column {', '.join(map(repr, missing))} (columns: {', '.join(columns) or 'none'})")
    index = {name: i for i, name in enumerate(class_names)}
    samples, splits = [], []
    for line, row in rows:
        name, label = _image_name(row, csv_path, line), row["label"].strip()
        if not label:
            raise EdgeskinError.about(csv_path, f"line {line}: empty label (expected one of {', '.join(class_names)})")
        if label not in index:
            raise EdgeskinError.about(csv_path, f"line {line}: unknown label '{label}' (expected one of {', '.join(class_names)})")
        samples.append(Sample(Path(name).stem, _resolve_image(image_dir, name, csv_path, line), index[label]))
        splits.append((row.get("split") or "").strip())
    if not samples:
        raise EdgeskinError.about(csv_path, "lists no images (no rows under the header)")
    _refuse_duplicates(csv_path, [s.image_id for s in samples])
    return samples, (splits if "split" in columns else None)


def _one_hot(row: dict[str, str], column: str, csv_path: Path, line: int) -> float:
    """A ground-truth cell: a number from 0 to 1 ('nan', 'inf' and '' are not)."""
    cell = row[column].strip()
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # false for NaN too
        raise EdgeskinError.about(csv_path, f"line {line}: {column} is {cell!r}, not a one-hot value from 0 to 1")
    return value


def _read_isic2019(gt_csv: Path, image_dir: Path, class_names) -> list[Sample]:
    columns, rows = _open_csv(gt_csv)
    missing = [c for c in ("image", *class_names) if c not in columns]
    if missing:
        raise EdgeskinError.about(gt_csv, f"missing column {', '.join(map(repr, missing))} (columns: {', '.join(columns)})")
    samples, names = [], []
    for line, row in rows:
        name = _image_name(row, gt_csv, line)
        names.append(name)
        hot = [_one_hot(row, c, gt_csv, line) for c in class_names]
        if UNKNOWN_CLASS in columns and _one_hot(row, UNKNOWN_CLASS, gt_csv, line) >= 0.5:
            continue  # UNK is never a training or evaluation label
        if sum(v >= 0.5 for v in hot) != 1:
            raise EdgeskinError.about(gt_csv, f"line {line}: expected exactly one class set to 1")
        samples.append(Sample(name, _resolve_image(image_dir, name, gt_csv, line), int(np.argmax(hot))))
    _refuse_duplicates(gt_csv, names)
    return samples


def stratified_split(samples: list[Sample], val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> tuple[list[Sample], list[Sample]]:
    """Per-class seeded shuffle; each class with >= 2 images gives at least one to validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    labels = sorted({s.label for s in samples})
    for label in labels:
        members = [s for s in samples if s.label == label]
        order = rng.permutation(len(members))
        n_val = max(1, round(len(members) * val_fraction)) if len(members) >= 2 else 0
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    key = {s.image_id: i for i, s in enumerate(samples)}
    return sorted(train, key=lambda s: key[s.image_id]), sorted(val, key=lambda s: key[s.image_id])


def _select_split(source: Path, label: str, samples: list[Sample], splits: list[str] | None, split: str | None,
                  class_names) -> Dataset:
    if split in (None, "all"):
        chosen, split = samples, "all"
    elif splits is not None:
        chosen = [s for s, name in zip(samples, splits, strict=True) if name == split]
        if not chosen:
            known = ", ".join(sorted(set(splits)))
            raise EdgeskinError.about(source, f"no images in split '{split}' (splits here: {known})")
    elif split in ("train", "val"):
        train, val = stratified_split(samples)
        chosen = train if split == "train" else val
    else:
        raise EdgeskinError.about(source, f"no split column, so only 'train'/'val' (stratified 80/20, seed 42) exist, not '{split}'")
    return Dataset(f"{label}:{split}", tuple(chosen), tuple(class_names))


def load_images(dataset: Dataset, config: PreprocessConfig, progress: bool = True) -> np.ndarray:
    """Preprocess every image into one (N, size, size, 3) uint8 array; report every bad file."""
    from edgeskin.progress import progress_iter

    out = np.empty((len(dataset), config.size, config.size, 3), dtype=np.uint8)
    failures = []
    for i, sample in enumerate(progress_iter(dataset.samples, f"loading {len(dataset)} images of {dataset.name}", progress)):
        try:
            out[i] = preprocess(sample.path, config)
        except EdgeskinError as exc:
            failures.append(str(exc))
    if failures:  # every bad file is named: the first in the error, any others on the lines before it
        for message in failures[1:]:
            print(f"edgeskin: bad image: {message}", file=sys.stderr)
        more = f" (+{len(failures) - 1} more bad images listed above)" if len(failures) > 1 else ""
        raise EdgeskinError(failures[0] + more)
    return out
