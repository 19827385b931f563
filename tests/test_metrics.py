"""BMA and friends against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np

from edgeskin.metrics import (
    balanced_accuracy,
    binary_rates,
    classification_report,
    confusion_matrix,
    per_class_recall,
)

CLASSES = ("MEL", "NV", "BCC")


def test_hand_computed_example():
    y_true = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 2, 1, 1, 2, 2, 2, 0]
    m = confusion_matrix(y_true, y_pred, 3)
    assert m.tolist() == [[2, 1, 1], [0, 2, 0], [1, 0, 3]]
    # recalls: MEL 2/4, NV 2/2, BCC 3/4 -> BMA (0.5 + 1 + 0.75) / 3 = 0.75; accuracy 7/10
    assert np.allclose(per_class_recall(m), [0.5, 1.0, 0.75])
    assert math.isclose(balanced_accuracy(m), 0.75)
    report = classification_report(y_true, y_pred, CLASSES)
    assert math.isclose(report.accuracy, 0.7)
    # melanoma: TP 2, FN 2, FP 1, TN 5 -> sensitivity 0.5, specificity 5/6
    assert math.isclose(report.melanoma_sensitivity, 0.5)
    assert math.isclose(report.melanoma_specificity, 5 / 6)


def test_bma_ignores_absent_classes_but_counts_present_ones():
    m = confusion_matrix([0, 0, 1], [0, 1, 2], 3)  # class 2 absent from truth
    assert math.isnan(per_class_recall(m)[2])
    assert math.isclose(balanced_accuracy(m), (0.5 + 0.0) / 2)


def test_bma_differs_from_accuracy_on_imbalance():
    y_true = [0] * 90 + [1] * 10
    y_pred = [0] * 100
    report = classification_report(y_true, y_pred, ("MEL", "NV"))
    assert math.isclose(report.accuracy, 0.9) and math.isclose(report.bma, 0.5)


def test_binary_rates_for_a_perfect_classifier():
    m = confusion_matrix([0, 1, 2, 0], [0, 1, 2, 0], 3)
    assert binary_rates(m, 0) == (1.0, 1.0)
