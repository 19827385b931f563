"""Can a latency ratio be trusted? The machine's state around a benchmark and the stability of its
ratios from round to round (edgeskin/benchmark.py times the backends in interleaved rounds).

A busy machine does not slow every backend alike: PyTorch's OpenMP threads wait on each other and
lose far more than a TFLite thread pool when another process takes a core, so interleaving alone
does not protect a ratio. Three measurements decide:
- free cores: a fixed CPU-bound loop in `threads` processes at once, before and after the timing,
  each copy's CPU time against its wall time: on free cores every copy gets a whole core;
- settled ratios: rounds go on until every artifact's per-round ratio to PyTorch (without a
  reference: every backend's per-round median) over the last WINDOW rounds lies within TOLERANCE
  of its median, or the time budget is spent;
- tails: p90/p50 of every backend at most TAIL_LIMIT (a stalled thread shows here first).
A ratio that fails is marked unstable wherever it is shown (ratio_text), never a plain number.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

TOLERANCE = 0.05  # per-round ratios within +-5% of their median
WINDOW = 5  # rounds the figures and the stability check use (the last ones)
BUDGET_SECONDS = 60.0  # extra rounds stop after this much timing
MIN_CPU_SHARE = 0.8  # every calibration copy got >= 80% of a core: the cores are free
TAIL_LIMIT = 1.5  # p90 / p50 of a backend above this: its runs were interrupted
_LOOP = 400_000  # iterations of the calibration loop (~15-30 ms of one core)


def _spin(iterations: int = _LOOP) -> tuple[float, float]:
    """A fixed pure-Python CPU-bound loop: (wall ms, CPU ms of this process while it ran)."""
    began, cpu = time.perf_counter(), time.process_time()
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return (time.perf_counter() - began) * 1e3, (time.process_time() - cpu) * 1e3


@dataclass(frozen=True)
class Calibration:
    """`processes` copies of the loop at once, each timed by the wall clock and by its own CPU time:
    a copy that had a core to itself used the CPU all the time it took (share 1.0); one that
    shared its core with another process got half of it (0.5). An absolute measure: it needs no
    quiet-machine baseline."""

    wall_ms: float  # the slowest copy's wall time
    cpu_share: float  # the smallest share of a core a copy got
    processes: int

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(processes: int) -> Calibration:
    """The loop in `processes` forked processes at once (in this one when 1), best of 2."""
    if processes <= 1:
        runs = [[_spin()] for _ in range(2)]
    else:
        context = multiprocessing.get_context("spawn")  # fork is unsafe once a threaded library (JAX, via the quantizer) is loaded
        with context.Pool(processes) as pool:
            pool.map(_spin, [1000] * processes)  # the workers exist before the timed copies start
            runs = [pool.map(_spin, [_LOOP] * processes) for _ in range(2)]
    shares = [min(cpu / wall for wall, cpu in copies) for copies in runs]
    best = int(np.argmax(shares))
    return Calibration(max(wall for wall, _ in runs[best]), min(1.0, shares[best]), max(1, processes))


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not on every platform
        return None


@dataclass(frozen=True)
class MachineState:
    load_average: float | None  # 1-minute load average (a lagging hint, not a verdict)
    calibration: Calibration

    @classmethod
    def now(cls, threads: int) -> MachineState:
        return cls(load_average(), calibrate(threads))

    def to_dict(self) -> dict:
        return {"load_average": self.load_average, "calibration": self.calibration.to_dict()}


def spread(values: list[float]) -> float:
    """The largest relative distance of a value from the median (0.05 = +-5%)."""
    array = np.asarray(values, dtype=float)
    middle = float(np.median(array))
    return float(np.abs(array / middle - 1).max()) if middle > 0 else float("inf")


def window_spreads(rounds: dict[str, list[float]], reference: str | None) -> dict[str, float]:
    """Per backend, the spread over the last WINDOW rounds of its per-round ratio to the reference
    (or of its per-round median, without a reference); `rounds`: name -> per-round median ms."""
    if reference is None:
        return {name: spread(medians[-WINDOW:]) for name, medians in rounds.items()}
    base = np.asarray(rounds[reference][-WINDOW:])
    return {name: spread(list(np.asarray(medians[-WINDOW:]) / base)) for name, medians in rounds.items() if name != reference}


def settled(rounds: dict[str, list[float]], reference: str | None) -> bool:
    return len(next(iter(rounds.values()))) >= WINDOW and all(s <= TOLERANCE for s in window_spreads(rounds, reference).values())


@dataclass
class NoiseVerdict:
    """How far the figures of one benchmark run can be trusted."""

    stable: bool
    reasons: list[str]  # why not (empty when stable)
    rounds: int
    seconds: float  # spent timing
    ratio_spread: dict[str, float]  # per artifact (or backend): spread over the last WINDOW rounds
    tail: dict[str, float]  # per backend: p90 / p50 over the window
    before: MachineState
    after: MachineState
    tolerance: float = TOLERANCE
    window: int = WINDOW
    unsettled: list[str] = field(default_factory=list)  # the backends whose ratio did not settle

    @property
    def busy(self) -> bool:
        """Another process had the cores before or after the timing."""
        return min(self.before.calibration.cpu_share, self.after.calibration.cpu_share) < MIN_CPU_SHARE

    def stable_for(self, name: str, reference: str | None) -> bool:
        """One row's ratio: free cores, its own ratio settled, no stalled runs in it or in the reference."""
        tails = [self.tail.get(name, 1.0), self.tail.get(reference, 1.0) if reference else 1.0]
        return not self.busy and name not in self.unsettled and max(tails) <= TAIL_LIMIT

    @property
    def label(self) -> str:
        return "stable" if self.stable else "UNSTABLE: " + "; ".join(self.reasons)

    def sentence(self) -> str:
        """One line for tables' footers and reports."""
        share = f"{self.before.calibration.cpu_share:.0%}/{self.after.calibration.cpu_share:.0%}"
        load = f"load average {self.before.load_average}" if self.before.load_average is not None else "no load average"
        return (f"noise check: {self.label} ({self.rounds} rounds in {self.seconds:.0f} s; ratios within "
                f"+-{self.tolerance:.0%} over the last {self.window} rounds: worst {max(self.ratio_spread.values(), default=0):.1%}; "
                f"share of a core per thread before/after {share}; {load})")

    def to_dict(self) -> dict:
        return {"stable": self.stable, "label": self.label, "reasons": self.reasons, "rounds": self.rounds, "seconds": round(self.seconds, 1),
                "tolerance": self.tolerance, "window": self.window, "ratio_spread": self.ratio_spread, "tail_p90_over_p50": self.tail,
                "unsettled": self.unsettled, "before": self.before.to_dict(), "after": self.after.to_dict()}


def judge(rounds: dict[str, list[float]], reference: str | None, tail: dict[str, float], before: MachineState,
          after: MachineState, seconds: float) -> NoiseVerdict:
    spreads = window_spreads(rounds, reference)
    unsettled = [name for name, s in spreads.items() if s > TOLERANCE]
    reasons = []
    if unsettled:
        what = "ratio to PyTorch" if reference else "latency"
        reasons.append(f"{what} of {', '.join(unsettled)} moved more than +-{TOLERANCE:.0%} between rounds "
                       f"(worst {max(spreads[n] for n in unsettled):.0%})")
    stalled = {name: value for name, value in tail.items() if value > TAIL_LIMIT}
    if stalled:
        reasons.append("p90/p50 above " + f"{TAIL_LIMIT:g}: " + ", ".join(f"{name} {value:.2f}" for name, value in stalled.items()))
    for label, state in (("before", before), ("after", after)):
        if state.calibration.cpu_share < MIN_CPU_SHARE:
            reasons.append(f"cores busy {label} the timing ({state.calibration.processes} copies of a CPU loop got "
                           f"{state.calibration.cpu_share:.0%} of a core each)")
    return NoiseVerdict(not reasons, reasons, len(next(iter(rounds.values()))), seconds, spreads, tail, before, after,
                        unsettled=unsettled)


def ratio_text(ratio: float | None, stable: bool | None) -> str:
    """A ratio as tables print it: never a plain number when it was not stable."""
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if stable is not False else f"{ratio:.2f}x (unstable)"
