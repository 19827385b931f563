"""The paper's metric (balanced multi-class accuracy) and the clinical numbers around it (numpy only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """Recall per class; NaN for a class with no true examples."""
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)


def balanced_accuracy(matrix: np.ndarray) -> float:
    """BMA: mean per-class recall over the classes present in the ground truth."""
    recall = per_class_recall(matrix)
    present = ~np.isnan(recall)
    return float(recall[present].mean()) if present.any() else float("nan")


def binary_rates(matrix: np.ndarray, positive: int) -> tuple[float, float]:
    """(sensitivity, specificity) of one class against all others."""
    tp = matrix[positive, positive]
    fn = matrix[positive].sum() - tp
    fp = matrix[:, positive].sum() - tp
    tn = matrix.sum() - tp - fn - fp
    sensitivity = tp / (tp + fn) if tp + fn else float("nan")
    specificity = tn / (tn + fp) if tn + fp else float("nan")
    return float(sensitivity), float(specificity)


@dataclass(frozen=True)
class ClassificationReport:
    n: int
    accuracy: float
    bma: float
    per_class_recall: dict[str, float]
    support: dict[str, int]
    melanoma_sensitivity: float
    melanoma_specificity: float
    confusion: list[list[int]]
    class_names: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def classification_report(y_true, y_pred, class_names, melanoma: str = "MEL") -> ClassificationReport:
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    recall = per_class_recall(matrix)
    if melanoma in class_names:
        sensitivity, specificity = binary_rates(matrix, list(class_names).index(melanoma))
    else:
        sensitivity = specificity = float("nan")
    n = int(matrix.sum())
    return ClassificationReport(
        n=n,
        accuracy=float(np.trace(matrix) / n) if n else float("nan"),
        bma=balanced_accuracy(matrix),
        per_class_recall={c: float(r) for c, r in zip(class_names, recall, strict=True)},
        support={c: int(s) for c, s in zip(class_names, matrix.sum(axis=1), strict=True)},
        melanoma_sensitivity=sensitivity,
        melanoma_specificity=specificity,
        confusion=matrix.tolist(),
        class_names=tuple(class_names),
    )
