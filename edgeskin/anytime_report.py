"""The anytime section of a parity report: accuracy and latency of an anytime file at its stored
exit thresholds, against its own full depth, and the accuracy-latency curve over thresholds.

Every stage of the file is timed on every parity image (median of `passes` passes, in one run),
so the latency of any policy is the sum of the stages each image runs: the policies compared
here differ only in where they stop, never in when they were measured. The spread between
passes is reported beside the figures as their noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeskin.anytime_policy import GRID, AnytimeOutcome, simulate
from edgeskin.markdown import markdown_table
from edgeskin.runtime.anytime import ExitPolicy
from edgeskin.runtime.coreml import CHECKER_LABEL

PASSES = 3


@dataclass
class AnytimeMeasurement:
    stages: tuple[int, ...]
    stage_ms: np.ndarray  # (images, stages): each stage's time, median over the passes
    noise: float  # max / min of the passes' total full-depth time: 1.0 = no spread
    probabilities: dict[int, np.ndarray]  # exit -> (images, classes)
    labels: np.ndarray
    class_names: tuple[str, ...]
    stored: ExitPolicy | None  # the file's own thresholds (None: none stored)
    runtime: str = ""  # what ran the stages (the predictor's runtime)

    def _latency_ms(self, outcome: AnytimeOutcome) -> np.ndarray:
        index = np.searchsorted(self.stages, outcome.exits)
        return np.cumsum(self.stage_ms, axis=1)[np.arange(len(index)), index]

    def point(self, policy: ExitPolicy | None) -> dict:
        outcome = simulate(self.probabilities, self.labels, self.class_names, policy)
        ms = self._latency_ms(outcome)
        return {"bma": outcome.bma, "melanoma_sensitivity": outcome.melanoma_sensitivity, "mean_ms": float(ms.mean()),
                "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
                "mean_blocks": outcome.blocks, "exits": {str(k): n for k, n in outcome.histogram(self.stages).items()}}

    def curve(self) -> list[dict]:
        """One threshold for every exit, over the grid: the accuracy-latency trade-off this file offers."""
        return [{"threshold": t, **self.point(ExitPolicy(dict.fromkeys(self.stages[:-1], t)))} for t in GRID[::5] + (GRID[-1],)]

    def fixed_exits(self) -> list[dict]:
        """Always stopping at exit k (the single-exit files one could ship instead)."""
        return [{"exit": k, **self.point(ExitPolicy({k: 0.0}) if k != self.stages[-1] else None)} for k in self.stages]

    def to_dict(self) -> dict:
        stored = self.point(self.stored) if self.stored else None
        full = self.point(None)
        return {"stored_thresholds": {str(k): v for k, v in self.stored.thresholds.items()} if self.stored else None,
                "measure": self.stored.measure if self.stored else None, "at_stored": stored, "full_depth": full,
                "mean_latency_ratio": stored["mean_ms"] / full["mean_ms"] if stored else None,
                "noise": self.noise, "passes": PASSES, "runtime": self.runtime, "curve": self.curve(), "fixed_exits": self.fixed_exits()}


def measure(predictor, pixels: np.ndarray, labels: np.ndarray, class_names, probabilities: dict[int, np.ndarray]) -> AnytimeMeasurement:
    passes = np.stack([[predictor.stage_seconds(p) for p in pixels] for _ in range(PASSES)]) * 1e3  # passes, images, stages
    totals = passes.sum(axis=(1, 2))
    try:
        stored = ExitPolicy.from_metadata(predictor.metadata, predictor.path)
    except Exception:  # noqa: BLE001 - a file without stored thresholds still gets its curve
        stored = None
    return AnytimeMeasurement(tuple(predictor.metadata.stages), np.median(passes, axis=0), float(totals.max() / totals.min()),
                              probabilities, labels, tuple(class_names), stored, predictor.runtime)


def summary_rows(measurement: AnytimeMeasurement) -> list[list[str]]:
    """Full depth and stored thresholds side by side (the report's table, and what parity prints)."""
    data = measurement.to_dict()
    rows = [["policy", "BMA", "MEL sens", "mean ms", "p50 ms", "p90 ms", "mean blocks", "answered at (exit: images)"]]
    for label, point in (("full depth", data["full_depth"]), ("stored thresholds", data["at_stored"])):
        if point:
            rows.append([label, f"{point['bma']:.4f}", f"{point['melanoma_sensitivity']:.3f}", f"{point['mean_ms']:.2f}",
                         f"{point['p50_ms']:.2f}", f"{point['p90_ms']:.2f}", f"{point['mean_blocks']:.2f}",
                         ", ".join(f"{k}: {n}" for k, n in point["exits"].items() if n)])
    return rows


def summary_sentences(measurement: AnytimeMeasurement) -> list[str]:
    data = measurement.to_dict()
    full, stored = data["full_depth"], data["at_stored"]
    verdict = (f"stored thresholds ({data['measure']}) {data['stored_thresholds']}: mean latency "
               f"{data['mean_latency_ratio']:.2f}x the full depth's, BMA {stored['bma'] - full['bma']:+.4f}, melanoma "
               f"sensitivity {stored['melanoma_sensitivity'] - full['melanoma_sensitivity']:+.3f}" if stored else "no thresholds stored")
    timing = (f"every stage timed on every image with {data['runtime']}, median of {data['passes']} passes; the passes "
              f"differ by up to {(data['noise'] - 1) * 100:.0f}% in total time")
    if data["runtime"].startswith(CHECKER_LABEL):
        timing += " (the checker's times rank the policies, a phone's are Core ML's: measure those in Xcode)"
    return [verdict, timing]


def markdown(name: str, measurement: AnytimeMeasurement, png: str) -> list[str]:
    return [f"### Anytime: {name}", "", markdown_table(summary_rows(measurement)), "", *[f"{line[0].upper()}{line[1:]}." for line in summary_sentences(measurement)],
            "", f"![anytime accuracy vs latency]({png})", ""]


def plot(name: str, measurement: AnytimeMeasurement, dataset: str, path) -> None:
    import matplotlib.pyplot as plt

    data = measurement.to_dict()
    figure, axis = plt.subplots(figsize=(7.5, 5), constrained_layout=True)
    curve = data["curve"]
    axis.plot([p["mean_ms"] for p in curve], [p["bma"] for p in curve], "-o", ms=3, color="tab:blue",
              label="one threshold for every exit (0.30..0.99)")
    for point in data["fixed_exits"]:
        axis.scatter(point["mean_ms"], point["bma"], marker="s", color="tab:gray")
        axis.annotate(f"exit {point['exit']}", (point["mean_ms"], point["bma"]), fontsize=8, xytext=(5, -12), textcoords="offset points")
    if data["at_stored"]:
        axis.scatter(data["at_stored"]["mean_ms"], data["at_stored"]["bma"], marker="*", s=250, color="tab:orange",
                     label="stored thresholds", zorder=3)
    axis.margins(x=0.08)
    checker = " by the numpy checker: ranks policies, not a phone's time" if measurement.runtime.startswith(CHECKER_LABEL) else ""
    axis.set_xlabel(f"mean latency per image, ms (stages timed on these images{checker})")
    axis.set_ylabel("BMA")
    axis.set_title(f"Anytime accuracy vs latency: {name}\non {dataset}; squares: always stop at that exit", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.savefig(path, dpi=110)
    plt.close(figure)
