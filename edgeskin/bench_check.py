"""`edgeskin bench` from a request: which artifacts, which reference, which images, then the timing.

Kept apart from edgeskin.benchmark, whose worker processes must import nothing heavy; the
reference rule (given, else the one checkpoint the manifests name) is `edgeskin parity`'s too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeskin.benchmark import LatencyResult, benchmark
from edgeskin.contract import StatedContract
from edgeskin.data import load_images, open_dataset
from edgeskin.environment import fingerprint, usable_cores
from edgeskin.image_sources import describe, resolve_images
from edgeskin.manifest import read_manifest
from edgeskin.noise import BUDGET_SECONDS, NoiseVerdict
from edgeskin.parity_check import expand_artifacts, load_reference
from edgeskin.peak import Peak
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.formats import read_artifact_metadata

Report = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def find_reference(given: Path | None, artifacts: list[tuple[Path, Path | None]], required: bool,
                   report: Report = _quiet) -> Path | None:
    """`given`, else the one source checkpoint named by the artifacts' manifests (when it exists)."""
    if given is not None:
        if not given.exists():
            raise EdgeskinError.about(given, "no such reference checkpoint")
        return given
    sources = set()
    for _, manifest in artifacts:
        if manifest is not None:
            sources.add(read_manifest(manifest).source_checkpoint.path)
    if len(sources) == 1 and Path(next(iter(sources))).exists():
        found = Path(next(iter(sources)))
        report(f"reference: {found} (from the manifest)")
        return found
    if required:
        raise EdgeskinError("no reference checkpoint: pass --reference CHECKPOINT (the PyTorch model the artifacts came from)")
    return None


@dataclass
class BenchRequest:
    artifacts: list[Path]  # artifact files, manifest.json files, or folders holding a manifest.json
    reference: Path | None = None  # None: the manifests' source checkpoint, if any (else no PyTorch row)
    data: Path | None = None  # None: the rule of edgeskin.image_sources
    split: str = "test"
    images: int = 8  # real images, cycled through
    runs: int = 50  # timed runs per backend
    threads: int | None = None  # None: every usable core
    budget_seconds: float = BUDGET_SECONDS  # timing beyond the first rounds, while the ratios have not settled
    stated: StatedContract | None = None  # --classes/--mean/--std/--crop-border for a foreign reference


@dataclass
class BenchRun:
    environment: dict  # edgeskin.environment.fingerprint()
    dataset: str
    images: int
    threads: int
    reference: LatencyResult | None
    artifacts: list[LatencyResult]
    noise: NoiseVerdict
    peak: Peak

    def to_dict(self) -> dict:
        return {"environment": self.environment, "images": self.dataset,
                "reference": self.reference.to_dict() if self.reference else None,
                "artifacts": [r.to_dict() for r in self.artifacts], "noise": self.noise.to_dict(),
                "peak": self.peak.to_dict()}


def run_bench(request: BenchRequest, report: Report = _quiet) -> BenchRun:
    """Images preprocessed as the reference (else the first artifact) expects, then every backend timed."""
    artifacts = expand_artifacts(request.artifacts)
    reference = find_reference(request.reference, artifacts, required=False, report=report)
    first = artifacts[0][0]
    meta = read_artifact_metadata(first)
    if reference:
        config = load_reference(reference, request.stated, [a for a, _ in artifacts], report).config.preprocess
    else:
        config = meta.contract.preprocess
    dataset = open_dataset(resolve_images(request.data), request.split)
    pixels = load_images(dataset, config, progress=False)[: request.images]
    report(describe("bench", len(pixels), dataset.name, "cycled"))
    threads = request.threads or usable_cores()
    environment = fingerprint()
    exit = meta.exit
    base, results, noise, peak = benchmark([a for a, _ in artifacts], (reference, exit) if reference else None, pixels, threads,
                                     request.runs, progress=lambda m: report(f"  {m}"), budget_seconds=request.budget_seconds)
    return BenchRun(environment, dataset.name, len(pixels), threads, base, results, noise, peak)
