"""Datasets: labels CSV and ISIC 2019 layouts, splits, and errors that name the file."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from edgeskin.data import Sample, load_images, open_dataset, stratified_split
from edgeskin.runtime import EdgeskinError, PreprocessConfig


def _copy_images(samples_dir, dest, n=6):
    dest.mkdir(parents=True)
    names = sorted(p.name for p in samples_dir.glob("*.jpg"))[:n]
    for name in names:
        shutil.copy(samples_dir / name, dest / name)
    return names


KNOWN_SPLIT_SIZES = {"isic-public": {"train": 1474, "val": 74, "test": 194},  # ../shared (its README's table)
                     "isic-cc0": {"train": 96, "val": 40, "test": 49}}  # the bundled set


def test_default_image_set_splits(real_data_dir):
    """The set the suite runs on (../shared in CI, the bundled one in a fresh clone) has its documented splits."""
    if real_data_dir.name not in KNOWN_SPLIT_SIZES:
        pytest.skip(f"$EDGESKIN_DATA points at {real_data_dir}, whose split sizes this test does not know")
    sizes = {split: len(open_dataset(real_data_dir, split)) for split in ("train", "val", "test")}
    assert sizes == KNOWN_SPLIT_SIZES[real_data_dir.name]


def test_unknown_split_is_named(bundled_dir):
    with pytest.raises(EdgeskinError, match=r"labels\.csv: no images in split 'valid' \(splits here: test, train, val\)"):
        open_dataset(bundled_dir, "valid")


def test_csv_missing_column(tmp_path, samples_dir):
    _copy_images(samples_dir, tmp_path / "images")
    (tmp_path / "labels.csv").write_text("image,diagnosis\nISIC_0000002.jpg,MEL\n")
    with pytest.raises(EdgeskinError, match=r"labels\.csv: missing column 'label' \(columns: image, diagnosis\)"):
        open_dataset(tmp_path)


def test_csv_unknown_label(tmp_path, samples_dir):
    names = _copy_images(samples_dir, tmp_path / "images", 2)
    (tmp_path / "labels.csv").write_text(f"image,label\n{names[0]},MEL\n{names[1]},MELANOMA\n")
    with pytest.raises(EdgeskinError, match=r"labels\.csv: line 3: unknown label 'MELANOMA'"):
        open_dataset(tmp_path)


def test_csv_missing_image(tmp_path, samples_dir):
    _copy_images(samples_dir, tmp_path / "images", 1)
    (tmp_path / "labels.csv").write_text("image,label\nISIC_9999999.jpg,NV\n")
    with pytest.raises(EdgeskinError, match=r"ISIC_9999999\.jpg: listed in labels\.csv line 2 but missing"):
        open_dataset(tmp_path)


def test_every_corrupt_image_is_named_when_loading(tmp_path, samples_dir, capsys):
    names = _copy_images(samples_dir, tmp_path / "images", 4)
    for bad in (names[1], names[3]):
        (tmp_path / "images" / bad).write_bytes(b"\xff\xd8\xff\xe0 broken")
    (tmp_path / "labels.csv").write_text("image,label\n" + "".join(f"{n},NV\n" for n in names))
    with pytest.raises(EdgeskinError, match=rf"{names[1]}: .*\(\+1 more bad images listed above\)"):
        load_images(open_dataset(tmp_path), PreprocessConfig(), progress=False)
    assert names[3] in capsys.readouterr().err


def test_no_split_column_gives_stratified_80_20(tmp_path, samples_dir):
    names = _copy_images(samples_dir, tmp_path / "images", 16)
    labels = ["MEL"] * 8 + ["NV"] * 8
    (tmp_path / "labels.csv").write_text("image,label\n" + "".join(f"{n},{lab}\n" for n, lab in zip(names, labels, strict=True)))
    train, val = open_dataset(tmp_path, "train"), open_dataset(tmp_path, "val")
    assert len(train) == 12 and len(val) == 4
    assert val.class_counts()[:2].tolist() == [2, 2]
    assert not {s.image_id for s in train.samples} & {s.image_id for s in val.samples}
    assert [s.image_id for s in open_dataset(tmp_path, "val").samples] == [s.image_id for s in val.samples]  # seeded
    with pytest.raises(EdgeskinError, match="no split column"):
        open_dataset(tmp_path, "test")


def test_stratified_split_proportions():
    samples = [Sample(f"i{i}", None, i % 4) for i in range(100)]
    train, val = stratified_split(samples)
    counts = np.bincount([s.label for s in val], minlength=4)
    assert counts.tolist() == [5, 5, 5, 5] and len(train) == 80


def test_isic2019_layout(tmp_path, samples_dir):
    folder = tmp_path / "ISIC_2019_Training_Input"
    names = _copy_images(samples_dir, folder, 4)
    header = "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"
    rows = [
        f"{names[0][:-4]},1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        f"{names[1][:-4]},0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        f"{names[2][:-4]},0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0",
        f"{names[3][:-4]},0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0",  # UNK: never a label, skipped
    ]
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(header + "\n".join(rows) + "\n")
    ds = open_dataset(tmp_path)
    assert [s.label for s in ds.samples] == [0, 1, 7]


# --- malformed CSVs, duplicates and special files (issue 13) ---------------------------------------


def test_duplicate_image_ids_are_refused_not_counted_twice(tmp_path, samples_dir):
    names = _copy_images(samples_dir, tmp_path / "images", 3)
    rows = [f"{names[0]},MEL", f"{names[1]},NV", f"{names[0]},NV", f"{names[2]},BCC", names[1][:-4] + ",NV"]
    (tmp_path / "labels.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    ids = [n[:-4] for n in names]
    with pytest.raises(EdgeskinError, match=rf"labels\.csv: 2 image ids listed more than once: {ids[0]}, {ids[1]}$"):
        open_dataset(tmp_path)


def test_many_duplicates_are_shown_as_the_first_few_and_a_count(tmp_path, samples_dir):
    names = _copy_images(samples_dir, tmp_path / "images", 7)
    (tmp_path / "labels.csv").write_text("image,label\n" + "".join(f"{n},NV\n{n},MEL\n" for n in names))
    shown = ", ".join(n[:-4] for n in names[:5])
    with pytest.raises(EdgeskinError, match=rf"labels\.csv: 7 image ids listed more than once: {shown} \(\+2 more\)$"):
        open_dataset(tmp_path)


@pytest.mark.parametrize(("row", "message"), [
    ("{0},MEL,extra", "line 3: 3 cells, but the header has 2"),
    ("{0}", "line 3: 1 cell, but the header has 2"),
    (",MEL", "line 3: empty image name"),
    ("{0},   ", r"line 3: empty label \(expected one of MEL, NV"),
])
def test_malformed_labels_csv_rows(tmp_path, samples_dir, row, message):
    names = _copy_images(samples_dir, tmp_path / "images", 2)
    (tmp_path / "labels.csv").write_text(f"image,label\n{names[1]},NV\n" + row.format(names[0]) + "\n")
    with pytest.raises(EdgeskinError, match=rf"labels\.csv: {message}"):
        open_dataset(tmp_path)


def test_line_numbers_count_blank_lines(tmp_path, samples_dir):
    names = _copy_images(samples_dir, tmp_path / "images", 1)
    (tmp_path / "labels.csv").write_text(f"image,label\n\n\n{names[0]},MOLE\n")
    with pytest.raises(EdgeskinError, match=r"labels\.csv: line 4: unknown label 'MOLE'"):
        open_dataset(tmp_path)


ISIC_HEADER = "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"


def _isic(tmp_path, samples_dir, rows: list[str]):
    names = _copy_images(samples_dir, tmp_path / "ISIC_2019_Training_Input", 2)
    body = "\n".join(r.format(*(n[:-4] for n in names)) for r in rows)
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(ISIC_HEADER + body + "\n")
    return names


@pytest.mark.parametrize(("row", "message"), [
    ("{0},1.0,0.0,0.0", "line 3: 4 cells, but the header has 10"),  # was a TypeError (DictReader's None)
    ("{0},1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0", "line 3: 11 cells, but the header has 10"),
    (",1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0", "line 3: empty image name"),
    ("{0},nan,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0", "line 3: MEL is 'nan', not a one-hot value from 0 to 1"),
    ("{0},1.0,inf,0.0,0.0,0.0,0.0,0.0,0.0,0.0", "line 3: NV is 'inf', not a one-hot value from 0 to 1"),
    ("{0},1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,", "line 3: UNK is '', not a one-hot value from 0 to 1"),
    ("{0},1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,yes", "line 3: UNK is 'yes', not a one-hot value from 0 to 1"),
    ("{1},1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0", "1 image id listed more than once: {1}$"),
])
def test_malformed_isic2019_rows(tmp_path, samples_dir, row, message):
    names = _isic(tmp_path, samples_dir, ["{1},0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0", row])
    with pytest.raises(EdgeskinError, match=r"ISIC_2019_Training_GroundTruth\.csv: " + message.format(*(n[:-4] for n in names))):
        open_dataset(tmp_path)


def test_fifo_labels_csv_and_fifo_image_are_refused_not_opened(tmp_path, samples_dir):
    from tests.test_checkpoint_limits import refused_without_hanging

    names = _copy_images(samples_dir, tmp_path / "images", 2)
    (tmp_path / "images" / names[1]).unlink()
    os.mkfifo(tmp_path / "images" / names[1])
    (tmp_path / "labels.csv").write_text(f"image,label\n{names[0]},NV\n{names[1]},MEL\n")
    with pytest.raises(EdgeskinError, match=rf"images/{names[1]}: listed in labels\.csv line 3: is a named pipe \(FIFO\)"):
        refused_without_hanging(open_dataset, tmp_path)
    (tmp_path / "labels.csv").unlink()
    os.mkfifo(tmp_path / "labels.csv")
    with pytest.raises(EdgeskinError, match=r"/labels\.csv: is a named pipe \(FIFO\)"):
        refused_without_hanging(open_dataset, tmp_path)
    with pytest.raises(EdgeskinError, match=r"/labels\.csv: is a named pipe \(FIFO\)"):
        refused_without_hanging(open_dataset, tmp_path / "labels.csv")
