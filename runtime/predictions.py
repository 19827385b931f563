"""What every predictor shares: the Prediction it returns, how pixels become a model input and an
output a float vector, and how predict's arguments become preprocessed images (runtime/predictor.py
for single-exit files, runtime/anytime.py for anytime files)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .backends import TensorSpec
from .errors import EdgeskinTypeError
from .preprocess import IMAGE_TYPES, ImageSource, check_image_type, preprocess


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
    return as_tensor(x, spec)


def as_tensor(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A float array as the tensor `spec` takes (quantized with its scale and zero point if integer)."""
    if spec.dtype in QUANTIZED_DTYPES:
        info = np.iinfo(spec.dtype)
        value = np.clip(np.round(value / spec.scale + spec.zero_point), info.min, info.max)
    return value.astype(spec.dtype)


def ranked(probabilities: np.ndarray, names, top_k: int) -> tuple[str, float, tuple[tuple[str, float], ...]]:
    """(label, its probability, the top_k (name, probability) pairs): what every Prediction starts with."""
    order = np.argsort(-probabilities)[: max(1, top_k)]
    return names[order[0]], float(probabilities[order[0]]), tuple((names[i], float(probabilities[i])) for i in order)


class LoadedArtifact:
    """What every predictor exposes about the file it loaded (runtime/predictor.py, runtime/anytime.py)."""

    def __init__(self, path, backend, metadata) -> None:
        self.path, self.backend, self.metadata = path, backend, metadata
        self.preprocess_config = metadata.contract.preprocess

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.metadata.class_names

    @property
    def runtime(self) -> str:
        return f"{self.backend.runtime} {self.backend.runtime_version}"


def dequantize(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A model output as a float32 vector (int8 outputs scaled back)."""
    value = value.astype(np.float32).reshape(-1)
    return (value - spec.zero_point) * spec.scale if spec.scale else value


def preprocessed_batch(images: ImageSource | Iterable[ImageSource], top_k: int, config) -> Iterable[np.ndarray]:
    """predict's arguments checked (one image or an iterable of them, a positive top_k), then each
    image preprocessed as it is reached; shared by every predictor."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise EdgeskinTypeError(f"predict: top_k must be a positive integer, got {top_k!r}")
    single = isinstance(images, IMAGE_TYPES) or isinstance(images, os.PathLike)
    if not single and not isinstance(images, Iterable):
        check_image_type(images, "predict")
    batch = [images] if single else list(images)
    for index, image in enumerate(batch):
        check_image_type(image, f"predict: item {index}")
    return (preprocess(image, config) for image in batch)
