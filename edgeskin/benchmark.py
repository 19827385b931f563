"""Latency, load time and memory of artifacts and of the PyTorch reference, one process per backend.

Each backend is measured in a fresh Python process (`python -m edgeskin.benchmark`), so its peak
RSS and start-up cost are its own, not those of whatever the parent had loaded; every process
gets the same preprocessed inputs (an .npy file) and the same thread count, one image at a time.
Ratios are only meaningful between rows of one run: same machine, same inputs, same threads.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeskin.runtime.errors import EdgeskinError

WARMUP = 5


@dataclass(frozen=True)
class LatencyResult:
    name: str  # file name, or "PyTorch reference"
    backend: str  # e.g. "ai-edge-litert 2.1.0", "onnxruntime 1.23.0", "torch 2.13.0 eager"
    threads: int
    runs: int
    import_seconds: float  # importing the runtime library
    load_seconds: float  # reading the model until it can run
    first_inference_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_per_s: float  # images per second, batch 1, one stream
    peak_rss_mb: float
    ratio_to_reference: float | None = None  # p50 / reference p50

    def to_dict(self) -> dict:
        return asdict(self)


def _peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux VmHWM, because ru_maxrss survives exec and
    would report the parent's size at fork time."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # macOS reports bytes, others KiB


def _time_runs(run, inputs: np.ndarray, runs: int) -> list[float]:
    for i in range(WARMUP):
        run(inputs[i % len(inputs)])
    samples = []
    for i in range(runs):
        began = time.perf_counter()
        run(inputs[i % len(inputs)])
        samples.append((time.perf_counter() - began) * 1e3)
    return samples


def _load_backend(spec: dict, threads: int):
    """-> (run(pixels), backend label, import seconds, load seconds)."""
    began = time.perf_counter()
    if spec["kind"] == "pytorch":
        import torch

        from edgeskin.checkpoint import load_checkpoint
        from edgeskin.models import deployable

        imported = time.perf_counter()
        torch.set_num_threads(threads)
        wrapper = deployable(load_checkpoint(spec["path"]).model, exit=spec.get("exit")).eval()
        loaded = time.perf_counter()

        def run(pixels):
            with torch.inference_mode():
                return wrapper(torch.from_numpy(pixels).permute(2, 0, 1)[None].float())

        return run, f"torch {torch.__version__} eager", imported - began, loaded - imported
    from edgeskin.runtime import load
    from edgeskin.runtime.backends import tflite_interpreter_class

    if Path(spec["path"]).suffix == ".tflite":
        tflite_interpreter_class()
    elif Path(spec["path"]).suffix == ".onnx":
        import onnxruntime  # noqa: F401
    imported = time.perf_counter()
    predictor = load(spec["path"], threads=threads)
    loaded = time.perf_counter()
    return predictor.run, predictor.runtime, imported - began, loaded - imported


def _worker(spec: dict) -> dict:
    inputs = np.load(spec["inputs"])
    run, backend, import_s, load_s = _load_backend(spec, spec["threads"])
    began = time.perf_counter()
    run(inputs[0])
    first_ms = (time.perf_counter() - began) * 1e3
    samples = np.array(_time_runs(run, inputs, spec["runs"]))
    return LatencyResult(spec["name"], backend, spec["threads"], spec["runs"], import_s, load_s, first_ms,
                         float(np.percentile(samples, 50)), float(np.percentile(samples, 90)),
                         float(np.percentile(samples, 99)), float(samples.mean()), float(1e3 / samples.mean()),
                         _peak_rss_mb()).to_dict()


def measure(spec: dict, inputs_file: Path, threads: int, runs: int) -> LatencyResult:
    """Measure one backend in its own process. spec: {"kind": "artifact"|"pytorch", "path", "name", "exit"?}."""
    job = {**spec, "path": str(spec["path"]), "inputs": str(inputs_file), "threads": threads, "runs": runs}
    done = subprocess.run([sys.executable, "-m", "edgeskin.benchmark", json.dumps(job)], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise EdgeskinError.about(spec["path"], f"benchmark failed ({lines[-1] if lines else f'exit code {done.returncode}'})")
    return LatencyResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def latency_caveat(backends: list[str]) -> str | None:
    """A footnote when a latency in the table says nothing about the deployment target."""
    from edgeskin.runtime.coreml import CHECKER_LABEL

    if not any(b.startswith(CHECKER_LABEL) for b in backends):
        return None
    return (f"* {CHECKER_LABEL}: numpy evaluating the package's program, the right numbers but not Core ML's speed; "
            "measure latency on a Mac or iPhone (Xcode's Core ML performance report).")


def benchmark(artifacts: list[Path], reference: tuple[Path, int | None] | None, pixels: np.ndarray, threads: int,
              runs: int, progress=None) -> tuple[LatencyResult | None, list[LatencyResult]]:
    """Reference first (if any), then each artifact; artifact ratios are p50 / reference p50."""
    with tempfile.TemporaryDirectory(prefix="edgeskin-bench-") as tmp:
        inputs_file = Path(tmp) / "inputs.npy"
        np.save(inputs_file, np.ascontiguousarray(pixels, dtype=np.uint8))
        specs = [{"kind": "artifact", "path": Path(p), "name": Path(p).name} for p in artifacts]
        if reference is not None:
            specs.insert(0, {"kind": "pytorch", "path": reference[0], "name": "PyTorch reference", "exit": reference[1]})
        results = []
        for spec in specs:
            if progress:
                progress(f"bench: {spec['name']} ({runs} runs, {threads} threads)")
            results.append(measure(spec, inputs_file, threads, runs))
    base = results.pop(0) if reference is not None else None
    if base is not None:
        results = [LatencyResult(**{**r.to_dict(), "ratio_to_reference": r.p50_ms / base.p50_ms}) for r in results]
    return base, results


if __name__ == "__main__":
    try:
        print(json.dumps(_worker(json.loads(sys.argv[1]))))
    except EdgeskinError as exc:
        print(f"edgeskin: error: {exc}", file=sys.stderr)
        sys.exit(2)
