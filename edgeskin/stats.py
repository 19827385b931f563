"""Is an artifact's accuracy really different from the reference's? Paired tests on the same images.

Both tests are paired (the same images through both models), which is what makes a small test
split informative: most images are classified identically, and only the disagreements count.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import comb

import numpy as np


@dataclass(frozen=True)
class McNemarResult:
    reference_only_correct: int  # b: reference right, artifact wrong
    artifact_only_correct: int  # c: artifact right, reference wrong
    p_value: float  # exact two-sided binomial test of b vs c


def mcnemar_exact(reference_correct: np.ndarray, artifact_correct: np.ndarray) -> McNemarResult:
    """Exact McNemar test: under H0 the discordant pairs split 50/50 (p = 1 when there are none)."""
    reference_correct, artifact_correct = np.asarray(reference_correct, bool), np.asarray(artifact_correct, bool)
    b = int((reference_correct & ~artifact_correct).sum())
    c = int((~reference_correct & artifact_correct).sum())
    n = b + c
    tail = sum(comb(n, k) for k in range(min(b, c) + 1))
    p = min(Fraction(1), 2 * Fraction(tail, 2**n)) if n else Fraction(1)
    return McNemarResult(b, c, float(p))


@dataclass(frozen=True)
class BootstrapInterval:
    estimate: float  # artifact BMA - reference BMA on the full set
    low: float  # 2.5th percentile over resamples
    high: float  # 97.5th percentile
    resamples: int


def _bma_rows(labels: np.ndarray, correct: np.ndarray, num_classes: int) -> np.ndarray:
    """BMA of each row of resampled (labels, correct) arrays; classes absent from a row are skipped."""
    recalls = np.full((labels.shape[0], num_classes), np.nan)
    for c in range(num_classes):
        members = labels == c
        count = members.sum(axis=1)
        hits = (members & correct).sum(axis=1)
        recalls[:, c] = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    return np.nanmean(recalls, axis=1)


def bootstrap_bma_difference(labels: np.ndarray, reference_pred: np.ndarray, artifact_pred: np.ndarray,
                             num_classes: int, resamples: int = 2000, seed: int = 0) -> BootstrapInterval:
    """Paired percentile bootstrap 95% interval of BMA(artifact) - BMA(reference)."""
    labels = np.asarray(labels)
    ref_ok, art_ok = np.asarray(reference_pred) == labels, np.asarray(artifact_pred) == labels
    full = (_bma_rows(labels[None], art_ok[None], num_classes) - _bma_rows(labels[None], ref_ok[None], num_classes))[0]
    if len(labels) == 0:
        return BootstrapInterval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, 500):  # chunks keep memory flat on large splits
        idx = rng.integers(0, len(labels), size=(min(500, resamples - start), len(labels)))
        diffs.append(_bma_rows(labels[idx], art_ok[idx], num_classes) - _bma_rows(labels[idx], ref_ok[idx], num_classes))
    diffs = np.concatenate(diffs)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return BootstrapInterval(float(full), float(low), float(high), resamples)
