"""The bundled demo student: it loads, it is the size the card says, and its card's figures are real."""

from __future__ import annotations

import json

import pytest

from edgeskin.model_loading import load_checkpoint
from tests.conftest import DEMO_STUDENT
from tests.helpers import has_real_data, run_cli


def test_demo_student_is_small_and_complete():
    assert DEMO_STUDENT.stat().st_size < 12 * 1024 * 1024
    loaded = load_checkpoint(DEMO_STUDENT)
    assert loaded.config.arch == "skindistilvit-ti6" and loaded.config.depth == 6
    prov = loaded.provenance
    assert prov["teacher_blocks"] == [0, 1, 2, 3, 4, 5]
    assert "edgeskin distill" in prov["command"] and prov["seed"] == 42
    assert (DEMO_STUDENT.parent / "MODEL_CARD.md").is_file()


def test_demo_student_keeps_90_percent_of_teacher_bma_on_test(real_data_dir, tmp_path):
    if not has_real_data(real_data_dir):
        pytest.skip("needs the larger real set (../shared/data/isic-public or $EDGESKIN_DATA): "
                    "the card's figures are on its 194-image test split")
    prov = load_checkpoint(DEMO_STUDENT).provenance
    out = tmp_path / "eval.json"
    done = run_cli("eval", "--checkpoint", DEMO_STUDENT, "--data", real_data_dir, "--split", "test", "--json", out)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["n"] == 194
    # the figures recorded with the weights (and quoted in MODEL_CARD.md) are what eval measures now
    assert report["bma"] == pytest.approx(prov["test_bma"], abs=1e-9)
    assert report["bma"] >= 0.9 * prov["teacher_test_bma"]
