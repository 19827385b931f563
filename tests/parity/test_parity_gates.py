"""The gates of the recipes table, asserted on the demo student's artifacts and the real test split."""

from __future__ import annotations

import numpy as np
import pytest

from edgeskin.converters.recipes import RECIPES

SHIPPED = [("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8-mixed"), ("onnx", "fp32")]


def _entry(report, target, recipe):
    return next(a for a in report["artifacts"] if a["target"] == target and a["recipe"] == recipe)


@pytest.mark.parametrize(("target", "recipe"), SHIPPED)
def test_shipped_recipe_meets_its_gate_on_the_test_split(parity_report, test_split_size, target, recipe):
    _, report, _, _ = parity_report
    entry, gate = _entry(report, target, recipe), RECIPES[recipe].gate
    parity = entry["parity"]
    assert report["images"]["count"] == test_split_size and parity["n_images"] == test_split_size
    assert entry["verdict"] == "pass", entry["failures"]
    assert parity["agreement"] >= gate.min_agreement
    if gate.max_logit_diff_rel is not None:
        assert parity["max_logit_diff_rel"] <= gate.max_logit_diff_rel
    if gate.min_cosine is not None:
        assert parity["cosine_mean"] >= gate.min_cosine
    if gate.max_bma_loss is not None:
        assert parity["bma_loss"] <= gate.max_bma_loss
    # the numbers agree with each other: flips are exactly the disagreements
    assert len(parity["flipped"]) == round((1 - parity["agreement"]) * parity["n_images"])


def test_full_int8_fails_its_gate_and_the_command_says_so(parity_report):
    _, report, code, stdout = parity_report
    entry = _entry(report, "tflite", "int8")
    assert entry["verdict"] == "fail" and entry["failures"]
    gate, parity = RECIPES["int8"].gate, entry["parity"]
    # which limit it breaks depends on the image set (49 bundled test images: one flip, 98%, but a BMA loss)
    assert parity["agreement"] < gate.min_agreement or parity["bma_loss"] > gate.max_bma_loss, parity
    assert code == 1 and report["passed"] is False
    assert "FAIL" in stdout


def test_statistics_are_consistent_with_the_confusion_matrices(parity_report):
    _, report, _, _ = parity_report
    for entry in report["artifacts"]:
        p = entry["parity"]
        ref, art = np.array(p["reference"]["confusion"]), np.array(p["artifact"]["confusion"])
        assert ref.sum() == art.sum() == p["n_images"]
        ref_correct, art_correct = np.trace(ref), np.trace(art)
        mc = p["mcnemar"]  # b - c is the difference in correct counts
        assert mc["reference_only_correct"] - mc["artifact_only_correct"] == ref_correct - art_correct
        assert 0.0 <= mc["p_value"] <= 1.0
        ci = p["bma_difference"]
        assert ci["low"] <= ci["estimate"] <= ci["high"]
        assert ci["estimate"] == pytest.approx(p["artifact_bma"] - p["reference_bma"], abs=1e-12)
        if p["agreement"] == 1.0:
            assert ci["low"] == ci["high"] == 0.0 and mc["p_value"] == 1.0
