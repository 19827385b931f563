"""Torch-free, TensorFlow-free inference side of edgeskin (numpy + Pillow + a model runtime).

Nothing here imports torch, TensorFlow or the rest of edgeskin: this package is what ships to
a phone-side test rig or a Raspberry Pi.
"""

from .errors import EdgeskinError
from .preprocess import PreprocessConfig, decode_image, preprocess

__all__ = ["EdgeskinError", "PreprocessConfig", "decode_image", "preprocess"]
