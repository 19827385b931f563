"""The bundled CC0 image set, and the one rule that picks a command's images."""

from __future__ import annotations

import csv
import hashlib
import re

import pytest
from PIL import Image

from edgeskin import image_sources
from edgeskin.data import open_dataset
from edgeskin.image_sources import BUNDLED_IMAGES, describe, resolve_images
from edgeskin.runtime import EdgeskinError


def _rows() -> list[dict]:
    with open(BUNDLED_IMAGES / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_bundled_set_is_cc0_small_and_big_enough_to_calibrate_and_verify():
    rows = _rows()
    for row in rows:  # ISIC Archive ids 0-556 are the CC0 range
        match = re.fullmatch(r"ISIC_(\d{7})\.jpg", row["image"])
        assert match and int(match.group(1)) <= 556, row["image"]
    files = list((BUNDLED_IMAGES / "images").iterdir())
    assert sorted(p.name for p in files) == sorted(r["image"] for r in rows)  # nothing unlisted
    assert sum(p.stat().st_size for p in BUNDLED_IMAGES.rglob("*") if p.is_file()) < 3_000_000
    splits = {name: open_dataset(BUNDLED_IMAGES, name) for name in ("train", "val", "test")}
    assert len(splits["train"]) >= 64 and len(splits["val"]) >= 32 and len(splits["test"]) >= 32
    ids = [{s.image_id for s in ds.samples} for ds in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])  # disjoint
    for ds in splits.values():  # both classes of the CC0 range in every split
        assert ds.class_counts()[:2].min() >= 10 and ds.class_counts()[2:].sum() == 0


def test_every_bundled_image_opens_at_its_listed_size_and_is_attributed():
    attribution = (BUNDLED_IMAGES / "ATTRIBUTION.md").read_text()
    assert "CC0" in attribution
    for row in _rows():
        with Image.open(BUNDLED_IMAGES / "images" / row["image"]) as image:
            image.load()
            assert image.size == (int(row["width"]), int(row["height"]))
        assert f"| {row['image']} | {row['label']} | {row['split']} |" in attribution
        assert re.fullmatch(r"[0-9a-f]{32}", row["source_md5"])


def test_bundled_originals_match_the_shared_source_when_it_is_here():
    """Unchanged 180 px files must be byte-identical to the source listed in labels.csv."""
    shared = image_sources.SHARED_DATA
    for row in _rows():
        source = shared / "images" / row["image"]
        if row["width"] == "180" and source.is_file():
            assert hashlib.md5((BUNDLED_IMAGES / "images" / row["image"]).read_bytes()).hexdigest() == row["source_md5"]


def test_a_given_path_is_used_or_refused_never_replaced(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGESKIN_DATA", raising=False)
    assert resolve_images(tmp_path).root == tmp_path and resolve_images(tmp_path).origin == "given"
    with pytest.raises(EdgeskinError, match=r"^/nonexistent: no such image folder or labels file \(given as --calib\)$"):
        resolve_images("/nonexistent", "--calib")
    monkeypatch.setenv("EDGESKIN_DATA", str(tmp_path / "gone"))
    with pytest.raises(EdgeskinError, match=r"gone: .*given as \$EDGESKIN_DATA"):
        resolve_images(None)
    assert resolve_images(tmp_path).root == tmp_path  # a flag beats the variable


def test_fallbacks_in_order_env_then_shared_then_bundled(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESKIN_DATA", str(tmp_path))
    assert resolve_images(None).origin == "$EDGESKIN_DATA"
    monkeypatch.delenv("EDGESKIN_DATA")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "labels.csv").write_text("image,label\n")
    monkeypatch.setattr(image_sources, "SHARED_DATA", shared)
    assert resolve_images(None).root == shared and resolve_images(None).origin == "shared"
    monkeypatch.setattr(image_sources, "SHARED_DATA", tmp_path / "absent")
    chosen = resolve_images(None)
    assert chosen.bundled and chosen.label == "bundled"
    assert open_dataset(chosen, "val").name == "bundled:val"
    assert describe("verdict", 40, "bundled:val") == "verdict: 40 images of bundled:val"
