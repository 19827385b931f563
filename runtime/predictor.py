"""`load(path) -> Predictor`: classify images with any edgeskin artifact, no torch, no TensorFlow.

The artifact's embedded metadata says everything needed: labels, input contract (shape,
layout, dtype, int8 scaling), preprocessing, and which output is which. Quantized inputs and
outputs are scaled here, so callers always pass images and get probabilities back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import integrity
from .backends import TensorSpec
from .errors import EdgeskinTypeError
from .formats import format_of, read_artifact_metadata
from .graph_check import check_declared, check_on_probe
from .metadata import ArtifactMetadata
from .predictions import LoadedArtifact, Prediction, dequantize, model_input, preprocessed_batch, ranked
from .preprocess import ImageSource


class Predictor(LoadedArtifact):
    """One loaded artifact. `predict` takes image paths/bytes/arrays; `run` takes preprocessed pixels."""

    def __init__(self, path: Path, backend, metadata: ArtifactMetadata) -> None:
        super().__init__(path, backend, metadata)
        # the metadata is a claim about the graph: checked once here, so no prediction is wrong for it
        check_declared(path, metadata, backend.inputs, backend.outputs)
        self.input = backend.inputs[0]
        check_on_probe(path, metadata, backend.outputs, self.run)

    @property
    def output_specs(self) -> list[TensorSpec]:
        """The tensors behind metadata.outputs, in that order."""
        return list(self.backend.outputs)

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Preprocessed uint8 (224,224,3) pixels -> {output name: float32 vector} (dequantized)."""
        raw = self.backend.run(model_input(pixels, self.metadata.input.layout, self.input))
        result = {}
        for name, spec, value in zip(self.metadata.outputs, self.backend.outputs, raw, strict=True):
            result[name] = dequantize(value, spec)
        return result

    def predict(self, images: ImageSource | Iterable[ImageSource], top_k: int = 3) -> list[Prediction]:
        """One image, or any iterable of them (a list, a generator): a Prediction per image.

        A value that is not an image is an EdgeskinTypeError (also a TypeError); a bad image file is
        an EdgeskinError naming it (for a batch that reports bad files and goes on, see classify.py).
        """
        return [self.predict_pixels(pixels, top_k) for pixels in preprocessed_batch(images, top_k, self.preprocess_config)]

    def predict_pixels(self, pixels: np.ndarray, top_k: int = 3) -> Prediction:
        outputs = self.run(pixels)
        probabilities = outputs.get("probabilities")
        logits = outputs.get("logits")
        if probabilities is None:
            shifted = np.exp(logits - logits.max())
            probabilities = shifted / shifted.sum()
        return Prediction(*ranked(probabilities, self.class_names, top_k), probabilities, logits)


def load(path: str | Path, threads: int | None = None, coreml_checker: bool = False, verify: bool = True) -> Predictor:
    """Load an artifact; its format (runtime/formats.py) picks the backend.

    The embedded metadata is read first, so a bad file is reported before a runtime touches it;
    then the file is vouched for (runtime/integrity.py: its manifest's sha256, or a first load in a
    child process, so a corrupt file that would crash the runtime is one line; verify=False skips
    that for files you trust), and the metadata is checked against the graph.
    A .mlpackage runs on Core ML itself on macOS; elsewhere (or with coreml_checker=True) its
    program is evaluated by edgeskin's numpy checker, whose numbers are Core ML's but whose
    latency says nothing about a phone.
    """
    if isinstance(threads, bool) or not (threads is None or (isinstance(threads, int) and threads > 0)):
        raise EdgeskinTypeError(f"load: threads must be a positive integer or None, got {threads!r}")
    path = Path(path)
    metadata = read_artifact_metadata(path)
    if verify:
        integrity.verify(path, coreml_checker)
    backend = format_of(path).open_backend(path, threads, coreml_checker)
    if metadata.stages:  # an anytime file: one signature per stage (runtime/anytime.py)
        from .anytime import AnytimePredictor

        return AnytimePredictor(path, backend, metadata)
    return Predictor(path, backend, metadata)

