"""The one verification path: real images -> reference logits -> artifact logits -> verdict.

`edgeskin convert` (the verdict of each fresh artifact) and `edgeskin parity` (the full suite)
both go through here, so an artifact is always judged on the same preprocessed pixels, by the
same numbers (edgeskin.parity.compare) and the gate of its recipe (converters/recipes.py), and
both produce the same result type, ArtifactCheck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeskin.converters.artifacts import artifact_bytes
from edgeskin.converters.recipes import RECIPES
from edgeskin.data import load_images, open_dataset
from edgeskin.evaluate import predict_logits
from edgeskin.image_sources import ImageSource, describe
from edgeskin.manifest import CheckRecord, now
from edgeskin.parity import ParityResult, compare
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.metadata import ArtifactMetadata
from edgeskin.runtime.predictor import Predictor


@dataclass
class VerificationImages:
    """Labelled real images, preprocessed as the model's contract says, and the reference's logits."""

    source: str  # e.g. "bundled:val"
    pixels: np.ndarray  # uint8 (N, size, size, 3)
    labels: np.ndarray
    image_ids: list[str]
    class_names: tuple[str, ...]
    reference: dict[int, np.ndarray]  # exit block -> PyTorch logits (N, classes)


def verification_images(source: ImageSource, split: str, loaded, exits, role: str, report, note: str = "",
                        progress: bool = False) -> VerificationImages:
    """Open `split` of `source` with the model's classes, say what is used, run the reference."""
    config = loaded.config
    try:
        dataset = open_dataset(source, split, config.class_names)
    except EdgeskinError as exc:
        if "unknown label" not in str(exc):
            raise
        raise EdgeskinError(f"{exc}: the {role} images must be labelled with this model's classes "
                            f"({', '.join(config.class_names)}); pass --data with such images") from None
    report(describe(role, len(dataset), dataset.name, note))
    pixels = load_images(dataset, config.preprocess, progress=progress)
    reference = {e: predict_logits(loaded.model, pixels, exit=e, progress=progress) for e in sorted(set(exits))}
    return VerificationImages(dataset.name, pixels, dataset.labels, [s.image_id for s in dataset.samples],
                              tuple(config.class_names), reference)


@dataclass
class ArtifactCheck:
    """One artifact judged against the PyTorch reference: what convert returns and parity reports."""

    path: Path
    metadata: ArtifactMetadata
    parity: ParityResult
    runtime: str  # the backend that produced the artifact's numbers, e.g. "ai-edge-litert 2.1.0"
    manifest: Path | None = None  # the manifest that lists the artifact
    divergence: object | None = None  # edgeskin.divergence.Divergence, when analysed
    latency: object | None = None  # edgeskin.benchmark.LatencyResult, when timed
    exit_parity: dict[int, ParityResult] = field(default_factory=dict)  # anytime files: every exit (the last is `parity`)
    anytime: object | None = None  # edgeskin.anytime_report.AnytimeMeasurement, when measured (parity)

    @property
    def recipe(self) -> str:
        return self.metadata.recipe

    @property
    def target(self) -> str:
        return self.metadata.target

    @property
    def exit(self) -> int:
        return self.metadata.exit

    @property
    def passed(self) -> bool:
        return self.parity.passed and all(p.passed for p in self.exit_parity.values())

    @property
    def failures(self) -> list[str]:
        """The final exit's failures, then each earlier exit's, named."""
        early = [f"exit {k}: {failure}" for k, p in self.exit_parity.items() if k != self.exit for failure in p.failures]
        return [*self.parity.failures, *early]

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def bytes(self) -> int:
        return artifact_bytes(self.path)

    def record(self, kind: str, images: VerificationImages, reference: str) -> CheckRecord:
        """This check as the manifest keeps it."""
        p = self.parity
        return CheckRecord(kind, now(), images.source, p.n_images, reference, self.verdict, self.failures, p.agreement,
                           p.cosine_mean, p.bma_loss)


def check_artifact(predictor: Predictor, images: VerificationImages, manifest: Path | None = None,
                   progress: bool = False) -> ArtifactCheck:
    """Run the artifact on every image and judge it by its recipe's gate."""
    from edgeskin.progress import progress_iter

    meta = predictor.metadata
    if meta.recipe not in RECIPES:
        raise EdgeskinError.about(predictor.path, f"unknown recipe '{meta.recipe}' in its metadata (known: {', '.join(RECIPES)})")
    rows = [predictor.run(p)["logits"] for p in progress_iter(images.pixels, f"{predictor.path.name} on {len(images.pixels)} images",
                                                               progress)]
    parity = compare(images.reference[meta.exit], np.stack(rows), images.labels, images.class_names, images.image_ids,
                     RECIPES[meta.recipe].gate)
    return ArtifactCheck(predictor.path, meta, parity, predictor.runtime, manifest)


def check_anytime(predictor, images: VerificationImages, manifest: Path | None = None) -> tuple[ArtifactCheck, dict[int, np.ndarray]]:
    """An anytime artifact judged exit by exit (each against the reference's same exit, by the
    recipe's gate); also returns each exit's probabilities on the images (the exit policy is chosen on them)."""
    meta = predictor.metadata
    runs = [predictor.run_all(p) for p in images.pixels]
    gate = RECIPES[meta.recipe].gate
    exit_parity = {k: compare(images.reference[k], np.stack([r[k]["logits"] for r in runs]), images.labels, images.class_names,
                              images.image_ids, gate) for k in meta.stages}
    probabilities = {k: np.stack([r[k]["probabilities"] for r in runs]) for k in meta.stages}
    check = ArtifactCheck(predictor.path, meta, exit_parity[meta.exit], predictor.runtime, manifest, exit_parity=exit_parity)
    return check, probabilities
