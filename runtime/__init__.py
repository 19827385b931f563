"""Torch-free, TensorFlow-free inference side of edgeskin (numpy + Pillow + a model runtime).

Nothing here imports torch, TensorFlow or the rest of edgeskin, and model runtimes are imported
only when a model is loaded: this package is what ships to a phone-side test rig or a Pi.

    from edgeskin.runtime import load
    predictions = load("model.tflite").predict(["lesion.jpg"])
"""

from .errors import EdgeskinError
from .formats import read_artifact_metadata
from .metadata import ArtifactMetadata
from .predictions import Prediction
from .predictor import Predictor, load
from .preprocess import PreprocessConfig, decode_image, preprocess

__all__ = [
    "ArtifactMetadata",
    "EdgeskinError",
    "Prediction",
    "Predictor",
    "PreprocessConfig",
    "decode_image",
    "load",
    "preprocess",
    "read_artifact_metadata",
]
