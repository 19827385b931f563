"""`load(path) -> Predictor`: classify images with any edgeskin artifact, no torch, no TensorFlow.

The artifact's embedded metadata says everything needed: labels, input contract (shape,
layout, dtype, int8 scaling), preprocessing, and which output is which. Quantized inputs and
outputs are scaled here, so callers always pass images and get probabilities back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import TensorSpec
from .errors import EdgeskinError
from .formats import format_of, read_artifact_metadata
from .metadata import ArtifactMetadata
from .preprocess import ImageSource, preprocess


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    top_k: tuple[tuple[str, float], ...]
    probabilities: np.ndarray  # in metadata.class_names order
    logits: np.ndarray | None = None


QUANTIZED_DTYPES = ("int8", "uint8", "int16")  # integer tensors with a scale and zero point (int16: w8a16)


def model_input(pixels: np.ndarray, layout: str, spec: TensorSpec) -> np.ndarray:
    """uint8 HxWx3 pixels -> a model's input tensor: batch of 1, layout, dtype, integer scaling."""
    x = pixels.astype(np.float32)[None]
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    if spec.dtype in QUANTIZED_DTYPES:
        info = np.iinfo(spec.dtype)
        x = np.clip(np.round(x / spec.scale + spec.zero_point), info.min, info.max)
    return x.astype(spec.dtype)


def dequantize(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A model output as a float32 vector (int8 outputs scaled back)."""
    value = value.astype(np.float32).reshape(-1)
    return (value - spec.zero_point) * spec.scale if spec.scale else value


class Predictor:
    """One loaded artifact. `predict` takes image paths/bytes/arrays; `run` takes preprocessed pixels."""

    def __init__(self, path: Path, backend, metadata: ArtifactMetadata) -> None:
        self.path, self.backend, self.metadata = path, backend, metadata
        self.preprocess_config = metadata.contract.preprocess
        self.input = backend.inputs[0]
        if len(backend.outputs) != len(metadata.outputs):
            raise EdgeskinError.about(path, f"model has {len(backend.outputs)} outputs, metadata names {len(metadata.outputs)}")

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.metadata.class_names

    @property
    def runtime(self) -> str:
        return f"{self.backend.runtime} {self.backend.runtime_version}"

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Preprocessed uint8 (224,224,3) pixels -> {output name: float32 vector} (dequantized)."""
        raw = self.backend.run(model_input(pixels, self.metadata.input.layout, self.input))
        result = {}
        for name, spec, value in zip(self.metadata.outputs, self.backend.outputs, raw, strict=True):
            result[name] = dequantize(value, spec)
        return result

    def predict(self, images: ImageSource | Sequence[ImageSource], top_k: int = 3) -> list[Prediction]:
        batch = images if isinstance(images, (list, tuple)) else [images]
        return [self.predict_pixels(preprocess(image, self.preprocess_config), top_k) for image in batch]

    def predict_pixels(self, pixels: np.ndarray, top_k: int = 3) -> Prediction:
        outputs = self.run(pixels)
        probabilities = outputs.get("probabilities")
        logits = outputs.get("logits")
        if probabilities is None:
            shifted = np.exp(logits - logits.max())
            probabilities = shifted / shifted.sum()
        order = np.argsort(-probabilities)[: max(1, top_k)]
        names = self.class_names
        return Prediction(names[order[0]], float(probabilities[order[0]]),
                          tuple((names[i], float(probabilities[i])) for i in order), probabilities, logits)


def load(path: str | Path, threads: int | None = None, coreml_checker: bool = False) -> Predictor:
    """Load an artifact; its format (runtime/formats.py) picks the backend.

    The embedded metadata is read first, so a bad file is reported before a runtime touches it.
    A .mlpackage runs on Core ML itself on macOS; elsewhere (or with coreml_checker=True) its
    program is evaluated by edgeskin's numpy checker, whose numbers are Core ML's but whose
    latency says nothing about a phone.
    """
    path = Path(path)
    metadata = read_artifact_metadata(path)
    return Predictor(path, format_of(path).open_backend(path, threads, coreml_checker), metadata)

