"""The paired statistics of the parity report, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from edgeskin.stats import bootstrap_bma_difference, mcnemar_exact


def test_mcnemar_exact_matches_the_binomial_tail():
    # b = 1 (reference-only correct), c = 5: p = 2 * (C(6,0) + C(6,1)) / 2^6 = 14/64
    reference = np.array([1, 0, 0, 0, 0, 0, 1, 1], bool)
    artifact = np.array([0, 1, 1, 1, 1, 1, 1, 1], bool)
    result = mcnemar_exact(reference, artifact)
    assert (result.reference_only_correct, result.artifact_only_correct) == (1, 5)
    assert result.p_value == pytest.approx(14 / 64)


def test_mcnemar_is_one_without_discordant_pairs_and_capped_at_one():
    same = np.array([1, 0, 1], bool)
    assert mcnemar_exact(same, same).p_value == 1.0
    assert mcnemar_exact(np.array([1, 0], bool), np.array([0, 1], bool)).p_value == 1.0  # b = c = 1: 2 * 3/4 capped


def test_bootstrap_interval_of_bma_difference():
    labels = np.array([0] * 50 + [1] * 50)
    reference = labels.copy()
    assert bootstrap_bma_difference(labels, reference, reference, 2).low == 0.0
    artifact = labels.copy()
    artifact[:10] = 1  # 10 of 50 class-0 images now wrong: BMA 1.0 -> 0.9
    interval = bootstrap_bma_difference(labels, reference, artifact, 2, resamples=2000, seed=1)
    assert interval.estimate == pytest.approx(-0.1)
    assert interval.low < -0.1 < interval.high < 0  # the loss is real and the interval says so
    assert interval.low > -0.25
