"""The noise check of every latency figure (edgeskin/noise.py): ratios that move between rounds or
cores taken by another process mark the figures unstable; a competing CPU-bound process is caught."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from edgeskin.noise import (
    TOLERANCE,
    WINDOW,
    Calibration,
    MachineState,
    calibrate,
    judge,
    ratio_text,
    settled,
    window_spreads,
)

QUIET = MachineState(0.1, Calibration(20.0, 0.99, 2))


def test_ratios_settle_only_when_every_round_agrees_within_the_tolerance():
    steady = {"ref": [10.0] * WINDOW, "a": [5.0, 5.1, 4.9, 5.0, 5.05]}
    assert settled(steady, "ref") and window_spreads(steady, "ref")["a"] == pytest.approx(0.02)
    jumpy = {"ref": [10.0, 30.0, 10.0, 10.0, 10.0], "a": [5.0] * WINDOW}  # PyTorch stalled in one round
    assert not settled(jumpy, "ref")
    assert not settled({"ref": [10.0] * (WINDOW - 1), "a": [5.0] * (WINDOW - 1)}, "ref")  # too few rounds
    drifting_then_steady = {"ref": [30.0, 20.0] + [10.0] * WINDOW, "a": [5.0] * (WINDOW + 2)}
    assert settled(drifting_then_steady, "ref")  # only the last rounds count
    assert settled({"a": [5.0, 5.1, 5.0, 4.95, 5.0]}, None)  # no reference: the latency itself


def test_the_verdict_names_each_reason_and_ratios_are_never_plain_when_unstable():
    rounds = {"ref": [10.0, 30.0, 10.0, 10.0, 10.0], "a.tflite": [5.0] * WINDOW}
    busy = MachineState(1.9, Calibration(36.0, 0.55, 2))
    verdict = judge(rounds, "ref", {"ref": 3.0, "a.tflite": 1.1}, busy, QUIET, 12.0)
    assert not verdict.stable and verdict.unsettled == ["a.tflite"]
    assert any("moved more than" in r for r in verdict.reasons) and any("cores busy before" in r for r in verdict.reasons)
    assert verdict.sentence().startswith("noise check: UNSTABLE") and verdict.to_dict()["stable"] is False
    assert verdict.busy and not verdict.stable_for("a.tflite", "ref")
    calm = judge({"ref": [10.0] * WINDOW, "a": [5.0] * WINDOW, "b": [5.0, 9.0, 5.0, 5.0, 5.0]}, "ref", {"ref": 1.1, "a": 1.1, "b": 1.3},
                 QUIET, QUIET, 1.0)
    assert not calm.stable and calm.stable_for("a", "ref") and not calm.stable_for("b", "ref")  # only b's ratio moved
    assert judge({"ref": [10.0] * WINDOW, "a": [5.0] * WINDOW}, "ref", {}, QUIET, QUIET, 1.0).stable
    assert ratio_text(0.5, False) == "0.50x (unstable)" and ratio_text(0.5, True) == "0.50x" and ratio_text(None, None) == "-"
    assert TOLERANCE == 0.05


def test_a_share_of_peak_is_flagged_when_its_timing_or_the_machine_was_unsteady():
    from edgeskin.benchmark import LatencyResult, peak_text

    def row(name: str, fraction: float | None) -> LatencyResult:
        return LatencyResult(name, "litert", 2, 50, 0.1, 0.1, 5.0, 5.0, 5.2, 5.4, 5.1, 196.0, 80.0, gflop=1.28,
                             compute="int8", peak_fraction=fraction)

    calm = judge({"ref": [10.0] * WINDOW, "a": [5.0] * WINDOW, "b": [5.0, 9.0, 5.0, 5.0, 5.0]}, "ref", {"ref": 1.1, "a": 1.1, "b": 1.1},
                 QUIET, QUIET, 1.0)
    assert peak_text(row("a", 0.176), calm) == "17.6% int8" and peak_text(row("a", None), calm) == "-"
    assert peak_text(row("b", 0.176), calm) == "17.6% int8 (unstable)"  # its own rounds moved
    busy = judge({"ref": [10.0] * WINDOW, "a": [5.0] * WINDOW}, "ref", {"ref": 1.1, "a": 1.1}, MachineState(1.9, Calibration(36.0, 0.6, 2)),
                 QUIET, 1.0)
    assert peak_text(row("a", 1.224), busy) == "122.4% int8 (unstable)"  # a peak measured on busy cores is low


def _competitors(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(count)]


def test_a_competing_cpu_bound_process_is_caught(tiny_tflite, sample_pixels):
    """Every core busy with `while 1: pass`: the calibration sees it, and bench marks its ratios."""
    from edgeskin.benchmark import benchmark
    from tests.conftest import DEMO_STUDENT

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = min(2, cores)
    spinning = _competitors(cores)
    try:
        assert calibrate(max(threads, 2)).cpu_share < 0.8
        base, (row,), noise, _ = benchmark([tiny_tflite], (DEMO_STUDENT, None), sample_pixels[:2], threads, 10, budget_seconds=3)
    finally:
        for process in spinning:
            process.kill()
    assert not noise.stable and row.ratio_stable is False and noise.reasons
    assert np.isfinite(row.ratio_to_reference) and noise.rounds >= WINDOW


def test_another_tools_file_is_timed_and_counted_like_ours(tmp_path, sample_pixels):
    """bench/peers.py's timmx files carry no edgeskin metadata: benchmark runs them as they are."""
    from edgeskin.benchmark import benchmark
    from edgeskin.converters.onnx import export_onnx_bytes
    from edgeskin.flops import torch_flops
    from edgeskin.model_loading import load_checkpoint
    from edgeskin.models import deployable
    from tests.conftest import DEMO_STUDENT

    model = load_checkpoint(DEMO_STUDENT).model
    foreign = tmp_path / "plain.onnx"
    foreign.write_bytes(export_onnx_bytes(model, None, sample_pixels[0]))  # no edgeskin metadata in it
    base, (row,), _, _ = benchmark([], (DEMO_STUDENT, None), sample_pixels[:2], 1, 5, budget_seconds=0, foreign=[(foreign, "NCHW")])
    import torch

    expected = torch_flops(deployable(model).eval(), torch.rand(1, 3, 224, 224) * 255)
    assert row.name == "plain.onnx" and row.backend.startswith("onnxruntime") and row.p50_ms > 0
    assert row.gflop == pytest.approx(expected / 1e9) == pytest.approx(base.gflop) and row.compute == "fp32"
