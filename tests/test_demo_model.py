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


def _card_row(label: str) -> list[float]:
    """BMA, accuracy, melanoma sensitivity and specificity as MODEL_CARD.md quotes them for `label`."""
    card = (DEMO_STUDENT.parent / "MODEL_CARD.md").read_text()
    row = next(line for line in card.splitlines() if line.startswith(f"| {label}"))
    return [float(cell) for cell in row.strip("|").split("|")[1:]]


def test_demo_card_figures_are_what_eval_measures(real_data_dir, tmp_path):
    """On the image set this checkout has: the larger set's 194-image test split (the figures stored with
    the weights, and the student's 90% of the teacher), else the bundled CC0 test split (the card's row)."""
    out = tmp_path / "eval.json"
    done = run_cli("eval", "--checkpoint", DEMO_STUDENT, "--data", real_data_dir, "--split", "test", "--json", out)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    measured = [report["bma"], report["accuracy"], report["melanoma_sensitivity"], report["melanoma_specificity"]]
    if has_real_data(real_data_dir):
        prov = load_checkpoint(DEMO_STUDENT).provenance
        assert report["n"] == 194
        # the figures recorded with the weights (and quoted in MODEL_CARD.md) are what eval measures now
        assert report["bma"] == pytest.approx(prov["test_bma"], abs=1e-9)
        assert report["bma"] >= 0.9 * prov["teacher_test_bma"]
        assert measured == pytest.approx(_card_row("student"), abs=5e-5)
    else:
        assert report["n"] == 49
        assert measured == pytest.approx(_card_row("bundled CC0"), abs=5e-5)


DEMO_EXITS = DEMO_STUDENT.parent / "skindistilvit-ti6-exits-demo.safetensors"


def test_multi_exit_demo_has_a_distilled_head_after_every_block():
    assert DEMO_EXITS.stat().st_size < 12 * 1024 * 1024
    loaded = load_checkpoint(DEMO_EXITS)
    assert loaded.config.arch == "skindistilvit-ti6-exits" and loaded.config.exit_blocks == (1, 2, 3, 4, 5, 6)
    prov = loaded.provenance
    assert "--every-exit" in prov["command"] and prov["teacher_blocks"] == [0, 1, 2, 3, 4, 5]
    assert set(prov["exit_test_bma"]) == {"1", "2", "3", "4", "5", "6"}
    assert (DEMO_STUDENT.parent / "MODEL_CARD-exits.md").is_file()


def test_multi_exit_card_figures_are_what_eval_measures(real_data_dir, tmp_path):
    """Per-exit BMA on the larger set's test split as stored with the weights and quoted in the card;
    on the bundled CC0 test split, the card's row for it."""
    out = tmp_path / "eval.json"
    done = run_cli("eval", "--checkpoint", DEMO_EXITS, "--data", real_data_dir, "--split", "test", "--all-exits", "--json", out)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    card = (DEMO_STUDENT.parent / "MODEL_CARD-exits.md").read_text()
    if has_real_data(real_data_dir):
        prov = load_checkpoint(DEMO_EXITS).provenance
        assert report["per_exit_bma"] == pytest.approx(prov["exit_test_bma"], abs=1e-9)
        row = next(line for line in card.splitlines() if line.startswith("| test BMA per exit"))
    else:
        row = next(line for line in card.splitlines() if line.startswith("| bundled CC0 BMA per exit"))
    quoted = [float(cell) for cell in row.strip("|").split("|")[1:]]
    assert quoted == pytest.approx([report["per_exit_bma"][str(k)] for k in range(1, 7)], abs=5e-5)
