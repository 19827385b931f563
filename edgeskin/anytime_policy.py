"""Choosing an anytime artifact's exit thresholds: on a validation split, for a stated budget.

Greedy, exit by exit from the first: each exit gets the lowest threshold (on a grid) at which the
anytime BMA stays within `budget` of the full depth's on these images, and its melanoma
sensitivity within `melanoma_budget`, given the thresholds already chosen for earlier exits; an
exit where no threshold keeps both never stops. The
result is stored in the artifact's metadata and used by `--anytime auto` (runtime/anytime.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeskin.metrics import classification_report
from edgeskin.runtime.anytime import ExitPolicy

GRID = tuple(round(0.30 + 0.01 * i, 2) for i in range(70))  # 0.30 .. 0.99
DEFAULT_BUDGET = 0.01  # BMA loss against the full depth: 1 point
MELANOMA_BUDGET = 0.02  # melanoma sensitivity loss against the full depth: 2 points


@dataclass(frozen=True)
class AnytimeOutcome:
    """A policy run over labelled images (from each exit's probabilities, no model call)."""

    bma: float
    melanoma_sensitivity: float
    exits: np.ndarray  # the exit that answered, per image
    blocks: float  # mean blocks computed per image

    def histogram(self, stages) -> dict[int, int]:
        return {k: int((self.exits == k).sum()) for k in stages}


def simulate(probabilities: dict[int, np.ndarray], labels: np.ndarray, class_names, policy: ExitPolicy | None) -> AnytimeOutcome:
    """Where each image stops under `policy` and what it predicts there."""
    stages = sorted(probabilities)
    n = len(labels)
    exits = np.full(n, stages[-1])
    for index in range(n):
        for k in stages[:-1]:
            if policy is not None and policy.stops(k, probabilities[k][index]):
                exits[index] = k
                break
    chosen = np.stack([probabilities[e][i] for i, e in enumerate(exits)])
    report = classification_report(labels, chosen.argmax(1), class_names)
    return AnytimeOutcome(report.bma, report.melanoma_sensitivity, exits, float(exits.mean()))


def within(outcome: AnytimeOutcome, full: AnytimeOutcome, budget: float, melanoma_budget: float) -> bool:
    """BMA and melanoma sensitivity (when the classes have melanoma) within their budgets of the full depth's."""
    melanoma_kept = np.isnan(full.melanoma_sensitivity) or outcome.melanoma_sensitivity >= full.melanoma_sensitivity - melanoma_budget - 1e-12
    return outcome.bma >= full.bma - budget - 1e-12 and bool(melanoma_kept)


def choose_policy(probabilities: dict[int, np.ndarray], labels: np.ndarray, class_names, budget: float = DEFAULT_BUDGET,
                  measure: str = "top1", melanoma_budget: float = MELANOMA_BUDGET) -> tuple[ExitPolicy, AnytimeOutcome, AnytimeOutcome]:
    """(policy, its outcome, the full depth's outcome) on these images."""
    stages = sorted(probabilities)
    full = simulate(probabilities, labels, class_names, None)
    thresholds: dict[int, float] = {}
    for k in stages[:-1]:
        for value in GRID:
            trial = ExitPolicy({**thresholds, k: value}, measure)
            if within(simulate(probabilities, labels, class_names, trial), full, budget, melanoma_budget):
                thresholds[k] = value
                break
    policy = ExitPolicy(thresholds, measure)
    return policy, simulate(probabilities, labels, class_names, policy), full
