"""`edgeskin parity`: every artifact against the PyTorch reference on one split of real images.

The reference logits come from the same code as `edgeskin eval` (same decoding, same batches),
so the report's reference BMA is the number `edgeskin eval` prints. Gates are the recipes table
of `edgeskin convert`. Each verdict is written back into the manifest that lists the artifact.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeskin.benchmark import LatencyResult, benchmark
from edgeskin.checkpoint import LoadedModel
from edgeskin.contract import StatedContract
from edgeskin.converters.artifacts import MANIFEST, artifact_bytes
from edgeskin.converters.recipes import RECIPES
from edgeskin.data import load_images, open_dataset
from edgeskin.divergence import Divergence, locate_divergence
from edgeskin.evaluate import predict_logits
from edgeskin.image_sources import describe, resolve_images
from edgeskin.metrics import ClassificationReport, classification_report
from edgeskin.model_loading import load_checkpoint
from edgeskin.parity import ParityResult, compare
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.metadata import ARTIFACT_SUFFIXES, ArtifactMetadata
from edgeskin.runtime.predictor import Predictor, peek_metadata
from edgeskin.runtime.predictor import load as load_artifact


@dataclass
class ParityRequest:
    artifacts: list[Path]  # artifact files, manifest.json files, or folders holding a manifest.json
    reference: Path | LoadedModel  # a checkpoint, or a model already loaded (the Python API's in-memory models)
    data: Path | None = None  # None: the rule of edgeskin.image_sources
    split: str = "test"
    explain: bool = False  # divergence analysis for passing artifacts too
    explain_images: int = 8
    bench: bool = True
    bench_runs: int = 30
    bench_images: int = 8
    threads: int | None = None
    update_manifest: bool = True
    stated: StatedContract | None = None  # --classes/--mean/--std/--crop-border for a foreign reference


@dataclass
class ArtifactCheck:
    path: Path
    predictor: Predictor
    manifest: Path | None
    parity: ParityResult | None = None
    divergence: Divergence | None = None
    latency: LatencyResult | None = None

    @property
    def recipe(self) -> str:
        return self.predictor.metadata.recipe

    @property
    def bytes(self) -> int:
        return artifact_bytes(self.path)

    @property
    def target(self) -> str:
        return self.predictor.metadata.target


@dataclass
class ParityRun:
    reference: LoadedModel
    dataset: str
    labels: np.ndarray
    image_ids: list[str]
    reference_reports: dict[int, ClassificationReport]  # by exit
    checks: list[ArtifactCheck]
    reference_latency: LatencyResult | None = None
    environment: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def failed(self) -> list[ArtifactCheck]:
        return [c for c in self.checks if not c.parity.passed]


def expand_artifacts(arguments: list[Path]) -> list[tuple[Path, Path | None]]:
    """Artifact files and manifests (or folders with one) -> [(artifact file, its manifest or None)]."""
    found: list[tuple[Path, Path | None]] = []
    for argument in map(Path, arguments):
        is_folder = argument.is_dir() and argument.suffix != ".mlpackage"  # a package is a folder too
        manifest = argument / MANIFEST if is_folder else argument
        if manifest.name == MANIFEST or is_folder:
            if not manifest.is_file():
                raise EdgeskinError.about(argument, f"no {MANIFEST} here (pass artifact files or a folder written by edgeskin convert)")
            try:
                entries = json.loads(manifest.read_text())["artifacts"]
            except (ValueError, KeyError, TypeError):
                raise EdgeskinError.about(manifest, "not an edgeskin manifest") from None
            found += [(manifest.parent / entry["file"], manifest) for entry in entries
                      if Path(entry["file"]).suffix in ARTIFACT_SUFFIXES]
        elif not argument.exists():
            raise EdgeskinError.about(argument, "no such artifact")
        elif argument.suffix not in ARTIFACT_SUFFIXES:
            raise EdgeskinError.about(argument, f"not an artifact ({', '.join(ARTIFACT_SUFFIXES)}) or {MANIFEST}")
        else:
            found.append((argument, _manifest_listing(argument)))
    if not found:
        raise EdgeskinError("no artifacts to check")
    return list(dict.fromkeys(found))


def _manifest_listing(artifact: Path) -> Path | None:
    """The manifest beside an artifact (or one folder up, for failed/) that lists it."""
    for folder in (artifact.parent, artifact.parent.parent):
        manifest = folder / MANIFEST
        if manifest.is_file():
            try:
                files = {(folder / a["file"]).resolve() for a in json.loads(manifest.read_text())["artifacts"]}
            except (ValueError, KeyError, TypeError):
                continue
            if artifact.resolve() in files:
                return manifest
    return None


def _check_against_reference(path: Path, meta: ArtifactMetadata, reference: LoadedModel, warn) -> None:
    config = reference.config
    if tuple(meta.class_names) != tuple(config.class_names):
        raise EdgeskinError.about(path, f"its classes ({', '.join(meta.class_names)}) differ from the reference's "
                                  f"({', '.join(config.class_names)}): wrong reference checkpoint?")
    if meta.exit not in config.exit_blocks:
        raise EdgeskinError.about(path, f"exports exit {meta.exit}, which {config.arch} ({reference.source}) does not have")
    if meta.recipe not in RECIPES:
        raise EdgeskinError.about(path, f"unknown recipe '{meta.recipe}' in its metadata (known: {', '.join(RECIPES)})")
    if meta.source_checkpoint_sha256 and meta.source_checkpoint_sha256 != reference.source_sha256:
        warn(f"note: {path} was converted from another checkpoint (sha256 {meta.source_checkpoint_sha256[:12]}...), "
             f"not {reference.source}")


def _artifact_logits(check: ArtifactCheck, pixels: np.ndarray) -> np.ndarray:
    from tqdm import tqdm

    rows = [check.predictor.run(p)["logits"] for p in tqdm(pixels, desc=check.path.name, unit="img", disable=None, leave=False)]
    return np.stack(rows)


def run_parity(request: ParityRequest, report=print) -> ParityRun:
    from edgeskin.environment import fingerprint

    if isinstance(request.reference, LoadedModel):
        reference = request.reference
    elif not Path(request.reference).exists():
        raise EdgeskinError.about(request.reference, "no such reference checkpoint")
    else:
        reference = load_checkpoint(request.reference, stated=request.stated)
    artifacts = expand_artifacts(request.artifacts)
    for path, _ in artifacts:  # every input is checked before any runtime is started
        _check_against_reference(path, peek_metadata(path), reference, report)
    dataset = open_dataset(resolve_images(request.data), request.split, reference.config.class_names)
    checks = [ArtifactCheck(path, load_artifact(path, request.threads), manifest) for path, manifest in artifacts]
    report(describe("parity", len(dataset), dataset.name, f"{len(checks)} artifact(s) vs {reference.config.arch}, {reference.source}"))
    pixels = load_images(dataset, reference.config.preprocess)
    exits = sorted({c.predictor.metadata.exit for c in checks})
    reference_logits = {e: predict_logits(reference.model, pixels, exit=e, progress=True) for e in exits}
    ids = [s.image_id for s in dataset.samples]
    for check in checks:
        logits = _artifact_logits(check, pixels)
        gate = RECIPES[check.recipe].gate
        check.parity = compare(reference_logits[check.predictor.metadata.exit], logits, dataset.labels, reference.config.class_names, ids, gate)
        if request.explain or not check.parity.passed:
            report(f"divergence: {check.path.name} block by block on {min(request.explain_images, len(pixels))} images")
            check.divergence = locate_divergence(check.predictor, reference.model, pixels[: request.explain_images])
    run = ParityRun(reference, dataset.name, dataset.labels, ids,
                    {e: classification_report(dataset.labels, reference_logits[e].argmax(1), reference.config.class_names) for e in exits},
                    checks, environment=fingerprint())
    if request.bench:
        threads = request.threads or run.environment["cores"]
        main_exit = exits[-1] if len(exits) == 1 else None
        run.reference_latency, latencies = benchmark([c.path for c in checks], (reference.source, main_exit), pixels[: request.bench_images],
                                                     threads, request.bench_runs, progress=report)
        for check, latency in zip(checks, latencies, strict=True):
            check.latency = latency
    if request.update_manifest:
        record_verdicts(run)
    return run


def record_verdicts(run: ParityRun) -> None:
    """Write each artifact's verdict into the manifest that lists it (atomically, per manifest)."""
    by_manifest: dict[Path, list[ArtifactCheck]] = {}
    for check in run.checks:
        if check.manifest is not None:
            by_manifest.setdefault(check.manifest, []).append(check)
    for manifest_path, checks in by_manifest.items():
        manifest = json.loads(manifest_path.read_text())
        for check in checks:
            entry = next(a for a in manifest["artifacts"] if (manifest_path.parent / a["file"]).resolve() == check.path.resolve())
            verdict = "pass" if check.parity.passed else "fail"
            entry.setdefault("checks", []).append({
                "kind": "edgeskin parity", "date": run.created, "images": run.dataset, "count": check.parity.n_images,
                "reference": str(run.reference.source), "verdict": verdict, "failures": check.parity.failures,
                "agreement": check.parity.agreement, "cosine_mean": check.parity.cosine_mean, "bma_loss": check.parity.bma_loss})
            entry["verdict"], entry["failures"] = verdict, check.parity.failures
        temporary = manifest_path.with_name(f".{manifest_path.name}.tmp")
        temporary.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(temporary, manifest_path)

