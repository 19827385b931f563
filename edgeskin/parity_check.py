"""`edgeskin parity`: every artifact against the PyTorch reference on one split of real images.

The reference logits come from the same code as `edgeskin eval` (same decoding, same batches),
so the report's reference BMA is the number `edgeskin eval` prints. Gates are the recipes table
of `edgeskin convert`. Each verdict is written back into the manifest that lists the artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeskin.benchmark import LatencyResult, benchmark
from edgeskin.checkpoint import LoadedModel
from edgeskin.contract import ContractMissing, StatedContract
from edgeskin.divergence import locate_divergence
from edgeskin.image_sources import resolve_images
from edgeskin.manifest import MANIFEST, listing_manifest, now, read_manifest, record_checks
from edgeskin.metrics import ClassificationReport, classification_report
from edgeskin.model_loading import load_checkpoint
from edgeskin.noise import NoiseVerdict
from edgeskin.peak import Peak
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.formats import ARTIFACT_SUFFIXES, format_of, is_artifact, read_artifact_metadata
from edgeskin.runtime.metadata import ArtifactMetadata
from edgeskin.runtime.predictor import load as load_artifact
from edgeskin.verification import ArtifactCheck, VerificationImages, check_artifact, verification_images


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
class ParityRun:
    reference: LoadedModel
    images: VerificationImages
    reference_reports: dict[int, ClassificationReport]  # by exit
    checks: list[ArtifactCheck]
    reference_latency: LatencyResult | None = None
    noise: NoiseVerdict | None = None  # the latency measurement's noise verdict (None: not measured)
    peak: Peak | None = None  # this CPU's matmul peak, measured with the latency
    environment: dict = field(default_factory=dict)
    created: str = field(default_factory=now)

    @property
    def image_ids(self) -> list[str]:
        return self.images.image_ids

    @property
    def dataset(self) -> str:
        return self.images.source

    @property
    def labels(self) -> np.ndarray:
        return self.images.labels

    @property
    def failed(self) -> list[ArtifactCheck]:
        return [c for c in self.checks if not c.passed]


def expand_artifacts(arguments: list[Path]) -> list[tuple[Path, Path | None]]:
    """Artifact files and manifests (or folders with one) -> [(artifact file, its manifest or None)]."""
    found: list[tuple[Path, Path | None]] = []
    for argument in map(Path, arguments):
        is_folder = argument.is_dir() and not (is_artifact(argument) and format_of(argument).is_package)
        manifest = argument / MANIFEST if is_folder else argument
        if manifest.name == MANIFEST or is_folder:
            if not manifest.is_file():
                raise EdgeskinError.about(argument, f"no {MANIFEST} here (pass artifact files or a folder written by edgeskin convert)")
            found += [(manifest.parent / entry.file, manifest) for entry in read_manifest(manifest).artifacts if is_artifact(entry.file)]
        elif not argument.exists():
            raise EdgeskinError.about(argument, "no such artifact")
        elif not is_artifact(argument):
            raise EdgeskinError.about(argument, f"not an artifact ({', '.join(ARTIFACT_SUFFIXES)}) or {MANIFEST}")
        else:
            found.append((argument, listing_manifest(argument)))
    if not found:
        raise EdgeskinError("no artifacts to check")
    return list(dict.fromkeys(found))


def _check_against_reference(path: Path, meta: ArtifactMetadata, reference: LoadedModel, warn) -> None:
    config = reference.config
    if tuple(meta.class_names) != tuple(config.class_names):
        raise EdgeskinError.about(path, f"its classes ({', '.join(meta.class_names)}) differ from the reference's "
                                  f"({', '.join(config.class_names)}): wrong reference checkpoint?")
    if meta.exit not in config.exit_blocks:
        raise EdgeskinError.about(path, f"exports exit {meta.exit}, which {config.arch} ({reference.source}) does not have")
    if meta.source_checkpoint_sha256 and meta.source_checkpoint_sha256 != reference.source_sha256:
        warn(f"note: {path} was converted from another checkpoint (sha256 {meta.source_checkpoint_sha256[:12]}...), "
             f"not {reference.source}")


def load_reference(path: Path, stated: StatedContract | None, artifacts: list[Path], report) -> LoadedModel:
    """The reference checkpoint; one that carries no contract (a timm state dict) takes the one its
    artifacts recorded when converted from it, so the flags given to convert need not be repeated."""
    try:
        return load_checkpoint(path, stated=stated)
    except ContractMissing:
        recorded = {read_artifact_metadata(a).contract for a in artifacts}
        contracts = {(c.class_names, c.mean, c.std, c.preprocess.crop_border) for c in recorded}
        if len(contracts) != 1:
            raise
        names, mean, std, crop = next(iter(contracts))
        if not (names and mean and std):  # artifacts written before the contract was recorded
            raise
        report(f"reference: {path} carries no classes or normalization; using the artifacts' recorded contract "
               f"({', '.join(names)}; mean {mean}, std {std})")
        return load_checkpoint(path, stated=(stated or StatedContract()).or_else(StatedContract(names, mean, std, crop)))


def _check_anytime(predictor, images, manifest, reference: LoadedModel, report) -> ArtifactCheck:
    """Exit-wise parity and the anytime measurement (edgeskin/anytime_report.py); the divergence
    analysis reads single-graph files, so an anytime file is located by its exit-wise rows instead."""
    from edgeskin import anytime_report
    from edgeskin.verification import check_anytime

    check, probabilities = check_anytime(predictor, images, manifest)
    report(f"anytime: {check.path.name}, every stage timed on {len(images.pixels)} images ({anytime_report.PASSES} passes)")
    check.anytime = anytime_report.measure(predictor, images.pixels, images.labels, reference.config.class_names, probabilities)
    return check


def run_parity(request: ParityRequest, report=print) -> ParityRun:
    from edgeskin.environment import fingerprint

    artifacts = expand_artifacts(request.artifacts)
    if isinstance(request.reference, LoadedModel):
        reference = request.reference
    elif not Path(request.reference).exists():
        raise EdgeskinError.about(request.reference, "no such reference checkpoint")
    else:
        reference = load_reference(request.reference, request.stated, [path for path, _ in artifacts], report)
    for path, _ in artifacts:  # every input is checked before any runtime is started
        _check_against_reference(path, read_artifact_metadata(path), reference, report)
    source = resolve_images(request.data)
    predictors = [(load_artifact(path, request.threads), manifest) for path, manifest in artifacts]
    exits = sorted({e for p, _ in predictors for e in (p.metadata.exit, *p.metadata.stages)})
    images = verification_images(source, request.split, reference, exits, "parity", report,
                                 f"{len(predictors)} artifact(s) vs {reference.config.arch}, {reference.source}", progress=True)
    checks = []
    for predictor, manifest in predictors:
        if predictor.metadata.stages:  # an anytime file: every exit, and the file at its stored thresholds
            check = _check_anytime(predictor, images, manifest, reference, report)
            checks.append(check)
            continue
        check = check_artifact(predictor, images, manifest, progress=True)
        if request.explain or not check.passed:
            report(f"divergence: {check.path.name} block by block on {min(request.explain_images, len(images.pixels))} images")
            check.divergence = locate_divergence(predictor, reference.model, images.pixels[: request.explain_images])
        checks.append(check)
    reports = {e: classification_report(images.labels, images.reference[e].argmax(1), reference.config.class_names) for e in exits}
    run = ParityRun(reference, images, reports, checks, environment=fingerprint())
    if request.bench:
        threads = request.threads or run.environment["cores"]
        main_exit = exits[-1] if len(exits) == 1 else None
        run.reference_latency, latencies, run.noise, run.peak = benchmark([c.path for c in checks], (reference.source, main_exit),
                                                                images.pixels[: request.bench_images], threads, request.bench_runs,
                                                                progress=report)
        for check, latency in zip(checks, latencies, strict=True):
            check.latency = latency
    if request.update_manifest:
        record_verdicts(run)
    return run


def record_verdicts(run: ParityRun) -> None:
    """Write each artifact's verdict into the manifest that lists it."""
    by_manifest: dict[Path, list] = {}
    for check in run.checks:
        if check.manifest is not None:
            by_manifest.setdefault(check.manifest, []).append((check.path, check.record("edgeskin parity", run.images, str(run.reference.source))))
    for manifest, records in by_manifest.items():
        record_checks(manifest, records)
