"""Artifact vs PyTorch reference on the same preprocessed images: numbers and the gate verdict.

One function serves the quick verdict of `edgeskin convert` and the full `edgeskin parity` report,
so both always judge an artifact by the same numbers and the same gates (converters/recipes.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgeskin.converters.recipes import Gate
from edgeskin.metrics import ClassificationReport, classification_report
from edgeskin.stats import BootstrapInterval, McNemarResult, bootstrap_bma_difference, mcnemar_exact


@dataclass
class ParityResult:
    n_images: int
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    logit_range: float
    max_abs_prob_diff: float
    mean_abs_prob_diff: float
    cosine_mean: float
    cosine_min: float
    agreement: float
    flipped: list[dict]
    reference_bma: float
    artifact_bma: float
    reference: ClassificationReport
    artifact: ClassificationReport
    mcnemar: McNemarResult
    bma_difference: BootstrapInterval  # artifact - reference, paired bootstrap 95% interval
    passed: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def max_logit_diff_rel(self) -> float:
        return self.max_abs_logit_diff / self.logit_range if self.logit_range else float("inf")

    @property
    def bma_loss(self) -> float:
        return self.reference_bma - self.artifact_bma

    def to_dict(self) -> dict:
        return {**asdict(self), "max_logit_diff_rel": self.max_logit_diff_rel, "bma_loss": self.bma_loss}


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def compare(reference: np.ndarray, artifact: np.ndarray, labels: np.ndarray, class_names, image_ids, gate: Gate,
            bootstrap_resamples: int = 2000) -> ParityResult:
    """reference/artifact: logits (N, classes) on the same images; labels: ground truth."""
    reference, artifact = reference.astype(np.float64), artifact.astype(np.float64)
    diff = np.abs(reference - artifact)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(artifact, axis=1)
    cosine = np.where(norms > 0, (reference * artifact).sum(axis=1) / np.maximum(norms, 1e-30), 0.0)
    ref_top, art_top = reference.argmax(axis=1), artifact.argmax(axis=1)
    ref_p, art_p = _softmax(reference), _softmax(artifact)
    flipped = [{"image": str(image_ids[i]), "reference": class_names[ref_top[i]], "artifact": class_names[art_top[i]],
                "reference_probability": float(ref_p[i, ref_top[i]]), "artifact_probability": float(art_p[i, art_top[i]])}
               for i in np.flatnonzero(ref_top != art_top)]
    labels = np.asarray(labels)
    reference_report = classification_report(labels, ref_top, class_names)
    artifact_report = classification_report(labels, art_top, class_names)
    result = ParityResult(
        n_images=len(reference),
        max_abs_logit_diff=float(diff.max()),
        mean_abs_logit_diff=float(diff.mean()),
        logit_range=float(reference.max() - reference.min()),
        max_abs_prob_diff=float(np.abs(ref_p - art_p).max()),
        mean_abs_prob_diff=float(np.abs(ref_p - art_p).mean()),
        cosine_mean=float(cosine.mean()),
        cosine_min=float(cosine.min()),
        agreement=float((ref_top == art_top).mean()),
        flipped=flipped,
        reference_bma=reference_report.bma,
        artifact_bma=artifact_report.bma,
        reference=reference_report,
        artifact=artifact_report,
        mcnemar=mcnemar_exact(ref_top == labels, art_top == labels),
        bma_difference=bootstrap_bma_difference(labels, ref_top, art_top, len(class_names), bootstrap_resamples),
    )
    result.failures = gate_failures(result, gate)
    result.passed = not result.failures
    return result


def gate_failures(result: ParityResult, gate: Gate) -> list[str]:
    failures = []
    if result.agreement < gate.min_agreement:
        failures.append(f"top-1 agreement {result.agreement:.2%} < {gate.min_agreement:.1%}")
    if gate.max_logit_diff_rel is not None and result.max_logit_diff_rel > gate.max_logit_diff_rel:
        failures.append(f"max |logit diff| {result.max_abs_logit_diff:.3g} > {gate.max_logit_diff_rel:g} x range {result.logit_range:.3g}")
    if gate.min_cosine is not None and result.cosine_mean < gate.min_cosine:
        failures.append(f"cosine {result.cosine_mean:.5f} < {gate.min_cosine}")
    if gate.max_bma_loss is not None and result.bma_loss > gate.max_bma_loss:
        failures.append(f"BMA loss {100 * result.bma_loss:.2f} points > {100 * gate.max_bma_loss:.1f}")
    return failures
