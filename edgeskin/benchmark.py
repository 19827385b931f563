"""Latency, load time and memory of artifacts and of the PyTorch reference, one process per backend.

Each backend is measured in a fresh Python process (`python -m edgeskin.benchmark`), so its peak
RSS and start-up cost are its own, not those of whatever the parent had loaded; every process
gets the same preprocessed inputs (an .npy file) and the same thread count, one image at a time,
and the timed runs are interleaved across backends in rounds, repeated until the ratios settle
(edgeskin/noise.py judges the run; its verdict travels with every figure).
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

from edgeskin.noise import BUDGET_SECONDS, WINDOW, MachineState, NoiseVerdict, judge, settled
from edgeskin.peak import Peak, measure_peak
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
    ratio_stable: bool | None = None  # edgeskin/noise.py's verdict on this row (None: no reference)
    gflop: float | None = None  # per image, counted from the graph (edgeskin/flops.py)
    compute: str | None = None  # what its matmuls run in ("fp32", "int8"; None: no CPU peak applies)
    peak_fraction: float | None = None  # achieved GFLOP/s at p50 / this CPU's peak for `compute` (edgeskin/peak.py)

    @property
    def gflops_per_s(self) -> float | None:
        return self.gflop / (self.p50_ms / 1e3) if self.gflop else None

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


def _time_runs(run, inputs: np.ndarray, runs: int, offset: int = 0) -> list[float]:
    samples = []
    for i in range(offset, offset + runs):
        began = time.perf_counter()
        run(inputs[i % len(inputs)])
        samples.append((time.perf_counter() - began) * 1e3)
    return samples


def foreign_runner(path: Path, layout: str, threads: int | None):
    """Another tool's file, without edgeskin metadata: (run(uint8 HWC pixels) -> its outputs, backend),
    fed float 0..255 pixels in `layout` ("NHWC" or "NCHW")."""
    from edgeskin.runtime.formats import format_of

    backend = format_of(path).open_backend(path, threads, True)
    nchw = layout == "NCHW"

    def run(pixels: np.ndarray) -> list[np.ndarray]:
        array = pixels.astype(np.float32)[None]
        return backend.run(np.ascontiguousarray(array.transpose(0, 3, 1, 2)) if nchw else array)

    return run, backend


def _load_backend(spec: dict, threads: int):
    """-> (run(pixels), backend label, import seconds, load seconds, count_flops(pixels): FLOPs per image,
    PyTorch's counter on the loaded model for the reference, the file's graph for an artifact)."""
    from edgeskin.flops import artifact_flops, torch_flops

    began = time.perf_counter()
    if spec["kind"] == "pytorch":
        import torch

        from edgeskin.model_loading import load_checkpoint
        from edgeskin.models import deployable

        imported = time.perf_counter()
        torch.set_num_threads(threads)
        wrapper = deployable(load_checkpoint(spec["path"]).model, exit=spec.get("exit")).eval()
        loaded = time.perf_counter()

        def run(pixels):
            with torch.inference_mode():
                return wrapper(torch.from_numpy(pixels).permute(2, 0, 1)[None].float())

        def count_flops(pixels):
            return torch_flops(wrapper, torch.from_numpy(pixels).permute(2, 0, 1)[None].float())

        return run, f"torch {torch.__version__} eager", imported - began, loaded - imported, count_flops
    from edgeskin.runtime import load
    from edgeskin.runtime.formats import format_of

    format_of(spec["path"]).import_runtime()
    imported = time.perf_counter()
    count_graph = lambda pixels: artifact_flops(spec["path"])  # noqa: E731 - the graph's count needs no input
    if spec["kind"] == "foreign":  # another tool's file (bench/peers.py)
        run_foreign, backend = foreign_runner(Path(spec["path"]), spec["layout"], threads)
        return (run_foreign, f"{backend.runtime} {backend.runtime_version}", imported - began, time.perf_counter() - imported,
                count_graph)
    predictor = load(spec["path"], threads=threads)
    loaded = time.perf_counter()
    return predictor.run, predictor.runtime, imported - began, loaded - imported, count_graph


def _worker(spec: dict) -> None:
    """Load, warm up, say so; then time as many runs as asked, round after round, until told to stop."""
    inputs = np.load(spec["inputs"])
    run, backend, import_s, load_s, count_flops = _load_backend(spec, spec["threads"])
    began = time.perf_counter()
    run(inputs[0])
    first_ms = (time.perf_counter() - began) * 1e3
    _time_runs(run, inputs, WARMUP)
    print(json.dumps({"backend": backend, "import_seconds": import_s, "load_seconds": load_s, "first_inference_ms": first_ms}),
          flush=True)
    done = 0
    for line in sys.stdin:
        if not line.strip():
            break
        count = int(line)
        run(inputs[done % len(inputs)])  # untimed: wakes this backend's threads while the last one's may still spin
        print(json.dumps(_time_runs(run, inputs, count, done)), flush=True)
        done += count
    peak_rss = _peak_rss_mb()  # before the FLOP count, which runs the model once more
    print(json.dumps({"peak_rss_mb": peak_rss, "flops": count_flops(inputs[0])}), flush=True)


class _Worker:
    """One backend in its own process, loaded once, timed in rounds."""

    def __init__(self, spec: dict, inputs_file: Path, threads: int) -> None:
        self.spec = spec
        job = {**spec, "path": str(spec["path"]), "inputs": str(inputs_file), "threads": threads}
        self.log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty runtime cannot block the worker
        self.process = subprocess.Popen([sys.executable, "-m", "edgeskin.benchmark", json.dumps(job)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.ready = self._reply()
        self.rounds: list[list[float]] = []  # each round's timed runs, ms

    def _reply(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.seek(0)
            lines = [x for x in self.log.read().strip().splitlines() if x.strip()]
            raise EdgeskinError.about(self.spec["path"], "benchmark failed "
                                      f"({lines[-1] if lines else f'exit code {self.process.returncode}'})")
        return json.loads(line)

    def time(self, runs: int) -> None:
        self.process.stdin.write(f"{runs}\n")
        self.process.stdin.flush()
        self.rounds.append(self._reply())

    @property
    def window(self) -> np.ndarray:
        """The runs of the last WINDOW rounds: what the figures are computed from."""
        return np.concatenate(self.rounds[-WINDOW:])

    def finish(self, threads: int, peak: Peak) -> LatencyResult:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        final = self._reply()
        self.process.wait()
        samples = self.window
        flops, compute = final["flops"], _compute(self.spec)
        p50 = float(np.percentile(samples, 50))
        fraction = flops / (p50 / 1e3) / 1e9 / peak.for_compute(compute) if flops and peak.for_compute(compute) else None
        return LatencyResult(self.spec["name"], self.ready["backend"], threads, len(samples), self.ready["import_seconds"],
                             self.ready["load_seconds"], self.ready["first_inference_ms"], p50,
                             float(np.percentile(samples, 90)), float(np.percentile(samples, 99)), float(samples.mean()),
                             float(1e3 / samples.mean()), final["peak_rss_mb"], gflop=flops / 1e9 if flops else None,
                             compute=compute, peak_fraction=fraction)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _compute(spec: dict) -> str | None:
    """What the backend's matmuls run in: PyTorch fp32; an artifact's recipe says (the Core ML checker: none)."""
    if spec["kind"] in ("pytorch", "foreign"):
        return "fp32"  # another tool's files are float (bench/peers.py compares fp32 with fp32)
    from edgeskin.converters.recipes import RECIPES
    from edgeskin.runtime.formats import read_artifact_metadata

    meta = read_artifact_metadata(spec["path"])
    return None if meta.target == "coreml" else RECIPES[meta.recipe].compute if meta.recipe in RECIPES else None


def latency_mark(backend: str) -> str:
    """"*" after a latency that says nothing about the deployment target (see latency_caveat)."""
    from edgeskin.runtime.coreml import CHECKER_LABEL

    return "*" if backend.startswith(CHECKER_LABEL) else ""


def peak_text(result: LatencyResult, noise: NoiseVerdict) -> str:
    """A row's share of the CPU's peak as tables print it: flagged when that row's own timing or the
    machine was unsteady (a peak measured on busy cores is low, and shares above 100% follow)."""
    if not result.peak_fraction:
        return "-"
    share = f"{result.peak_fraction:.1%} {result.compute}"
    return share if noise.stable_for(result.name, None) else f"{share} (unstable)"


def latency_caveat(backends: list[str]) -> str | None:
    """The footnote for latencies marked by latency_mark, when a table has any."""
    from edgeskin.runtime.coreml import CHECKER_LABEL

    if not any(latency_mark(b) for b in backends):
        return None
    return (f"* {CHECKER_LABEL}: numpy evaluating the package's program, the right numbers but not Core ML's speed; "
            "measure latency on a Mac or iPhone (Xcode's Core ML performance report).")


def benchmark(artifacts: list[Path], reference: tuple[Path, int | None] | None, pixels: np.ndarray, threads: int,
              runs: int, progress=None, budget_seconds: float = BUDGET_SECONDS, foreign: list[tuple[Path, str]] = ()
              ) -> tuple[LatencyResult | None, list[LatencyResult], NoiseVerdict, Peak]:
    """Reference (if any) and each artifact, each in its own process, timed in interleaved rounds
    (one backend runs at a time) of runs/WINDOW runs each, so that a machine's drift between
    minutes falls on every backend alike; rounds go on past WINDOW until the ratios settle or
    `budget_seconds` is spent. Figures come from the last WINDOW rounds; artifact ratios are
    p50 / reference p50, each marked stable or not by the noise verdict. `foreign`: files another tool
    wrote, without edgeskin metadata, as (path, "NHWC"/"NCHW"): run on float 0..255 pixels."""
    say = progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="edgeskin-bench-") as tmp:
        inputs_file = Path(tmp) / "inputs.npy"
        np.save(inputs_file, np.ascontiguousarray(pixels, dtype=np.uint8))
        specs = [{"kind": "artifact", "path": Path(p), "name": Path(p).name} for p in artifacts]
        specs += [{"kind": "foreign", "path": Path(p), "name": Path(p).name, "layout": layout} for p, layout in foreign]
        if reference is not None:
            specs.insert(0, {"kind": "pytorch", "path": reference[0], "name": "PyTorch reference", "exit": reference[1]})
        workers: list[_Worker] = []
        try:
            for n, spec in enumerate(specs, 1):
                say(f"bench: loading {n}/{len(specs)} {spec['name']} ({threads} threads)")
                workers.append(_Worker(spec, inputs_file, threads))
            say(f"bench: this CPU's matmul peak at {threads} threads, then the machine's state (a CPU loop in {threads} processes)")
            peak = measure_peak(threads)
            before = MachineState.now(threads)
            began, per_round, said = time.perf_counter(), max(1, runs // WINDOW), 0.0
            while True:
                if len(workers[0].rounds) < WINDOW or time.perf_counter() - said > 5:  # every round, then every 5 s
                    said = time.perf_counter()
                    say(f"bench: round {len(workers[0].rounds) + 1} (at least {WINDOW}), {per_round} runs x {len(workers)} "
                        f"backends, {said - began:.0f} s")
                for worker in workers:
                    worker.time(per_round)
                medians = {w.spec["name"]: [float(np.median(r)) for r in w.rounds] for w in workers}
                base_name = workers[0].spec["name"] if reference is not None else None
                if len(workers[0].rounds) >= WINDOW and (settled(medians, base_name) or time.perf_counter() - began > budget_seconds):
                    break
            seconds = time.perf_counter() - began
            tail = {w.spec["name"]: float(np.percentile(w.window, 90) / np.percentile(w.window, 50)) for w in workers}
            results = [worker.finish(threads, peak) for worker in workers]
        finally:
            for worker in workers:
                worker.close()
    noise = judge(medians, base_name, tail, before, MachineState.now(threads), seconds)
    say(f"bench: {noise.sentence()}")
    base = results.pop(0) if reference is not None else None
    if base is not None:
        results = [LatencyResult(**{**r.to_dict(), "ratio_to_reference": r.p50_ms / base.p50_ms,
                                    "ratio_stable": noise.stable_for(r.name, base.name)}) for r in results]
    return base, results, noise, peak


if __name__ == "__main__":
    try:
        _worker(json.loads(sys.argv[1]))
    except EdgeskinError as exc:
        print(f"edgeskin: error: {exc}", file=sys.stderr)
        sys.exit(2)
