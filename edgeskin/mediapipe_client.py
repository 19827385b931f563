"""MediaPipe Tasks' ImageClassifier as an app would run it, on an edgeskin .tflite as it is: the
check that the file's TFLite Metadata (converters/tflite_metadata.py) is what that client needs.

Both sides get the same preprocessed 224x224 pixels, so MediaPipe's own resizing never differs
from edgeskin's; the classifier's "probabilities" head is compared with edgeskin's runtime on the
same file. `mediapipe` is in the [dev] extra (MediaPipe 1.2: its classifier runs through its C API).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from edgeskin.data import open_dataset
from edgeskin.image_sources import ImageSource
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.predictor import load
from edgeskin.runtime.preprocess import PreprocessConfig, preprocess

HEAD = "probabilities"  # the classification head with labels.txt; the logits head has none


class ClientRefused(EdgeskinError):
    """MediaPipe would not load the file; `reason` is its own message."""

    def __init__(self, artifact: Path, reason: str) -> None:
        super().__init__(f"{artifact}: MediaPipe's ImageClassifier refused it: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class ClientAgreement:
    """MediaPipe's ImageClassifier against edgeskin's runtime on one artifact and the same pixels."""

    artifact: str
    images: int
    top1_agreement: float  # fraction of images with the same top-1 class
    max_score_difference: float  # max |MediaPipe score - edgeskin probability| over images and classes
    labels_match: bool  # MediaPipe's category names (from labels.txt) are the artifact's class names, in order
    mediapipe_version: str


def check_pixels(source: ImageSource, split: str, count: int, config: PreprocessConfig) -> np.ndarray:
    """The first `count` images of a split, preprocessed as the artifact's contract says (uint8 NxHxWx3)."""
    samples = open_dataset(source, split).samples[:count]
    return np.stack([preprocess(sample.path, config) for sample in samples])


def mediapipe_scores(artifact: Path, pixels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per image, the classifier's probabilities head as a vector in label order, and its label names."""
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions
    except ImportError as exc:
        raise EdgeskinError(f"mediapipe is not installed ({exc}); it is in edgeskin's [dev] extra") from None
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(artifact)), max_results=-1)
    try:
        classifier = vision.ImageClassifier.create_from_options(options)
    except Exception as exc:  # MediaPipe's refusal of the file is the finding: one line
        raise ClientRefused(artifact, str(exc)) from None
    scores, names = [], {}
    with contextlib.closing(classifier):
        for image in pixels:
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            head = next(c for c in result.classifications if c.head_name == HEAD)
            vector = np.zeros(len(head.categories), dtype=np.float32)
            for category in head.categories:
                vector[category.index] = category.score
                names[category.index] = category.category_name
            scores.append(vector)
    return np.stack(scores), [names[i] for i in sorted(names)]


def compare(artifact: str | Path, pixels: np.ndarray) -> ClientAgreement:
    """Run both on the same pixels: top-1 agreement, the largest score difference, the label names."""
    predictor = load(artifact)
    ours = np.stack([predictor.run(image)["probabilities"] for image in pixels])
    theirs, names = mediapipe_scores(Path(artifact), pixels)
    if theirs.shape != ours.shape:
        raise EdgeskinError.about(artifact, f"MediaPipe gave {theirs.shape[1]} scores per image, edgeskin {ours.shape[1]}")
    return ClientAgreement(str(artifact), len(pixels), float(np.mean(theirs.argmax(1) == ours.argmax(1))),
                           float(np.abs(theirs - ours).max()), tuple(names) == tuple(predictor.class_names),
                           version("mediapipe"))
