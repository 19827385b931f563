"""Anytime inference: run an anytime artifact stage by stage and stop at the first confident exit.

An anytime .tflite (converters/anytime.py) holds one signature per stage (runtime/stages.py). An
ExitPolicy says when to stop: after exit k when the top probability (or the margin between the two
top probabilities) reaches that exit's threshold; the last exit always answers. Each prediction
names the exit that answered and how long it took. `auto` is the policy stored in the artifact's
metadata, chosen on a validation split for a stated accuracy budget (edgeskin/anytime_policy.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EdgeskinError, EdgeskinTypeError
from .graph_check import PROBE_GRAY, SOFTMAX_TOLERANCE, SUM_TOLERANCE
from .metadata import ArtifactMetadata
from .predictions import LoadedArtifact, Prediction, as_tensor, dequantize, preprocessed_batch, ranked
from .preprocess import ImageSource
from .stages import LOGITS, PROBABILITIES, TOKENS, StageSpec, stage_plan

MEASURES = ("top1", "margin")


@dataclass(frozen=True)
class ExitPolicy:
    """Stop after exit k when `measure` of its probabilities >= thresholds[k]; exits without a threshold never stop."""

    thresholds: dict[int, float]
    measure: str = "top1"  # "top1": the top probability; "margin": top minus second

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise EdgeskinError(f"exit policy measure must be one of {', '.join(MEASURES)}, got {self.measure!r}")
        for exit, value in self.thresholds.items():
            if isinstance(value, bool) or not isinstance(exit, int):
                raise EdgeskinError(f"exit policy: exits are block numbers, got {exit!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise EdgeskinError(f"exit policy threshold for exit {exit} must be a number in 0..1, got {value!r}")

    def score(self, probabilities: np.ndarray) -> float:
        top = np.sort(probabilities)[::-1]
        return float(top[0] if self.measure == "top1" else top[0] - (top[1] if len(top) > 1 else 0.0))

    def stops(self, exit: int, probabilities: np.ndarray) -> bool:
        threshold = self.thresholds.get(exit)
        return threshold is not None and self.score(probabilities) >= threshold

    @classmethod
    def from_metadata(cls, metadata: ArtifactMetadata, source: object) -> ExitPolicy:
        stored = metadata.anytime or {}
        thresholds = stored.get("thresholds")
        if not isinstance(thresholds, dict):
            raise EdgeskinError.about(source, "no exit thresholds in its metadata: give --anytime a number instead of auto")
        try:
            return cls({int(k): v for k, v in thresholds.items()}, stored.get("measure", "top1"))
        except (TypeError, ValueError) as exc:
            raise EdgeskinError.about(source, f"stored exit thresholds are malformed ({exc})") from None

    @classmethod
    def of(cls, policy: object, metadata: ArtifactMetadata, source: object) -> ExitPolicy | None:
        """What predict accepts: None (full depth), "auto" (stored), a number (one threshold for every exit), a dict, a policy."""
        if policy is None or isinstance(policy, ExitPolicy):
            return policy
        if policy == "auto":
            return cls.from_metadata(metadata, source)
        if isinstance(policy, (int, float)) and not isinstance(policy, bool):
            return cls(dict.fromkeys(metadata.stages[:-1], float(policy)))
        if isinstance(policy, dict):
            return cls({int(k): v for k, v in policy.items()})
        raise EdgeskinTypeError(f"exit_policy must be None, 'auto', a threshold in 0..1, a dict or an ExitPolicy, got {policy!r}")


ANYTIME_HELP = ("anytime files: stop at the first exit whose top probability reaches THRESHOLD (0..1), or at the "
                "thresholds stored in the file (auto); each result names its exit")


def policy_option(predictor, value: str | None) -> ExitPolicy | None:
    """--anytime THRESHOLD|auto (edgeskin-pi, edgeskin predict) as an ExitPolicy; only an anytime file has exits to stop at."""
    if value is None:
        return None
    if not predictor.metadata.stages:
        raise EdgeskinError.about(predictor.path, "--anytime needs an anytime file (edgeskin convert --exits all); this one has one exit")
    if value != "auto":
        try:
            value = float(value)
        except ValueError:
            raise EdgeskinError(f"--anytime {value}: expected a threshold in 0..1 or auto") from None
    return ExitPolicy.of(value, predictor.metadata, predictor.path)


@dataclass(frozen=True)
class AnytimePrediction(Prediction):
    exit: int = 0  # the exit that answered
    seconds: float = 0.0  # model time for this image, stages run until the answer


class AnytimePredictor(LoadedArtifact):
    """One loaded anytime artifact: `run(pixels, exit=k)` computes exit k; `predict(images, exit_policy)` stops early."""

    def __init__(self, path: Path, backend, metadata: ArtifactMetadata) -> None:
        super().__init__(path, backend, metadata)
        self.stages: list[StageSpec] = stage_plan(metadata.stages, metadata.stages)
        signatures = backend.signatures()
        self.input = _check_stages(path, metadata, self.stages, signatures)
        self._outputs = {stage.key: signatures[stage.key]["outputs"] for stage in self.stages}
        self._inputs = {stage.key: signatures[stage.key]["inputs"][stage.input] for stage in self.stages}
        for stage in self.stages:  # each exit's outputs must behave as the metadata says, on a probe image
            _check_probe(path, metadata, stage.exit, self.run)

    @property
    def output_specs(self) -> list:
        """The last stage's tensors behind metadata.outputs, in that order."""
        return [self._outputs[self.stages[-1].key][role] for role in self.metadata.outputs]

    def _stage(self, stage: StageSpec, value: np.ndarray) -> dict[str, np.ndarray]:
        """One stage on float pixels (H,W,3) or float tokens; quantized inputs and outputs scaled here."""
        spec = self._inputs[stage.key]
        value = as_tensor(value.astype(np.float32)[None] if stage.first == 1 else value, spec)
        outputs = self.backend.run_signature(stage.key, {stage.input: value})
        specs = self._outputs[stage.key]
        return {name: (_to_float(v, specs[name]) if name == TOKENS else dequantize(v, specs[name])) for name, v in outputs.items()}

    def run(self, pixels: np.ndarray, exit: int | None = None) -> dict[str, np.ndarray]:
        """Preprocessed uint8 pixels -> {probabilities, logits} of exit `exit` (default: the last), stages run in order."""
        exit = self.metadata.exit if exit is None else exit
        if exit not in self.metadata.stages:
            raise EdgeskinError.about(self.path, f"no stage ends at exit {exit} (stages: {', '.join(map(str, self.metadata.stages))})")
        value = pixels
        for stage in self.stages:
            outputs = self._stage(stage, value)
            if stage.exit == exit:
                return {PROBABILITIES: outputs[PROBABILITIES], LOGITS: outputs[LOGITS]}
            value = outputs[TOKENS]
        raise AssertionError("unreachable: the exit is one of the stages")

    def run_all(self, pixels: np.ndarray) -> dict[int, dict[str, np.ndarray]]:
        """Every exit's {probabilities, logits}, the stages run once in order (verification, threshold choice)."""
        found, value = {}, pixels
        for stage in self.stages:
            outputs = self._stage(stage, value)
            found[stage.exit] = {PROBABILITIES: outputs[PROBABILITIES], LOGITS: outputs[LOGITS]}
            value = outputs.get(TOKENS)
        return found

    def stage_seconds(self, pixels: np.ndarray) -> list[float]:
        """Each stage's time on one image, run in order (what a policy's latency is computed from)."""
        times, value = [], pixels
        for stage in self.stages:
            began = time.perf_counter()
            outputs = self._stage(stage, value)
            times.append(time.perf_counter() - began)
            value = outputs.get(TOKENS)
        return times

    def run_anytime(self, pixels: np.ndarray, policy: ExitPolicy | None) -> tuple[int, dict[str, np.ndarray], float]:
        """(exit that answered, its outputs, seconds) with stages run until the policy stops."""
        began, value = time.perf_counter(), pixels
        for stage in self.stages:
            outputs = self._stage(stage, value)
            if stage.final or (policy is not None and policy.stops(stage.exit, outputs[PROBABILITIES])):
                return stage.exit, outputs, time.perf_counter() - began
            value = outputs[TOKENS]
        raise AssertionError("unreachable: the last stage always answers")

    def predict(self, images: ImageSource | Iterable[ImageSource], top_k: int = 3, exit_policy: object = None) -> list[AnytimePrediction]:
        """Like Predictor.predict, stopping per image where `exit_policy` says (None: full depth; "auto": stored)."""
        policy = ExitPolicy.of(exit_policy, self.metadata, self.path)
        return [self.predict_pixels(pixels, top_k, policy) for pixels in preprocessed_batch(images, top_k, self.preprocess_config)]

    def predict_pixels(self, pixels: np.ndarray, top_k: int = 3, policy: ExitPolicy | None = None) -> AnytimePrediction:
        exit, outputs, seconds = self.run_anytime(pixels, policy)
        probabilities = outputs[PROBABILITIES]
        return AnytimePrediction(*ranked(probabilities, self.class_names, top_k), probabilities, outputs[LOGITS],
                                 exit=exit, seconds=seconds)


def _to_float(value: np.ndarray, spec) -> np.ndarray:
    """A tensor back to float32, shape kept (tokens pass from one stage to the next this way)."""
    value = value.astype(np.float32)
    return (value - spec.zero_point) * spec.scale if spec.scale else value


def _check_stages(path: object, metadata: ArtifactMetadata, stages: list[StageSpec], signatures: dict) -> object:
    """Every stage's signature, with the input and outputs its spec names and class-sized heads; returns the pixels spec."""
    classes = len(metadata.class_names)
    if set(signatures) != {stage.key for stage in stages}:
        raise EdgeskinError.about(path, f"metadata names stages {', '.join(s.key for s in stages)}; the file has signatures "
                                  f"{', '.join(sorted(signatures)) or 'none'}")
    for stage in stages:
        found = signatures.get(stage.key)
        if found is None:
            raise EdgeskinError.about(path, f"metadata names stage {stage.key}, the file has signatures "
                                      f"{', '.join(sorted(signatures)) or 'none'}")
        if list(found["inputs"]) != [stage.input] or sorted(found["outputs"]) != sorted(stage.outputs):
            raise EdgeskinError.about(path, f"signature {stage.key} takes {list(found['inputs'])} and gives "
                                      f"{sorted(found['outputs'])}; an anytime stage takes {stage.input} and gives "
                                      f"{', '.join(stage.outputs)}")
        for role in (PROBABILITIES, LOGITS):
            if int(np.prod(found["outputs"][role].shape)) != classes:
                raise EdgeskinError.about(path, f"metadata names {classes} classes but {stage.key}'s {role} has "
                                          f"{int(np.prod(found['outputs'][role].shape))} values")
    pixels = signatures[stages[0].key]["inputs"]["pixels"]
    size = metadata.contract.preprocess.size
    if tuple(pixels.shape) != (1, size, size, 3):
        raise EdgeskinError.about(path, f"the first stage takes {'x'.join(map(str, pixels.shape))}, not 1x{size}x{size}x3 pixels")
    return pixels


def _check_probe(path: object, metadata: ArtifactMetadata, exit: int, run) -> None:
    """Exit `exit` on a gray probe image: probabilities sum to 1 and are the softmax of the logits."""
    size = metadata.contract.preprocess.size
    result = run(np.full((size, size, 3), PROBE_GRAY, np.uint8), exit)
    probabilities, logits = result[PROBABILITIES], result[LOGITS]
    total = float(probabilities.sum())
    shifted = np.exp(logits - logits.max())
    gap = float(np.abs(shifted / shifted.sum() - probabilities).max())
    if not (np.isfinite(total) and abs(total - 1) <= SUM_TOLERANCE and gap <= SOFTMAX_TOLERANCE):
        raise EdgeskinError.about(path, f"exit {exit}'s probabilities are not the softmax of its logits on a probe image "
                                  f"(sum {total:.3g}, gap {gap:.3g}): the stage outputs are mislabelled")
