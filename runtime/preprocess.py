"""The one image preprocessing path (numpy + Pillow only).

Both the PyTorch reference and every artifact are fed pixels from `preprocess`, so the two
always see identical inputs. It stops at uint8 RGB 224x224: the normalization lives inside the
model graph (DESIGN.md section 3), so no caller can feed wrongly normalized pixels.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import EdgeskinError, EdgeskinTypeError, one_line, shown
from .paths import regular_file

# Decoding is bounded twice, before any pixel is decoded: by pixels (a header can promise gigapixels;
# 80 MP covers every dermatoscope) and by the bytes Pillow will hold (mode x pixels), so one file
# cannot take a 1-2 GB Raspberry Pi past its memory. JPEGs far larger than the input are decoded at
# reduced size (libjpeg's DCT scaling), so a 48 MP phone photo costs a few MB, not 190.
MAX_PIXELS = 80_000_000
MAX_INPUT_SIZE = 4096  # a model's input side; 224 for every SkinDistilViT
MAX_DECODED_BYTES = 192 * 2**20
# Large images are reduced (JPEG draft, Image.reduce) to no less than this many times the input size
# before the resize, so the resize still sees every detail it can use
KEEP_FACTOR = 4
# Pillow's in-memory bytes per pixel by mode (unlisted modes: 4, its widest 8-bit layout)
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# EXIF orientation (tag 0x0112) -> the transpose that shows the image upright (as ImageOps.exif_transpose)
_ORIENTATION_TAG = 0x0112
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
# what a caller may pass as one image
IMAGE_TYPES = (str, Path, bytes, np.ndarray, Image.Image)

ImageSource = str | Path | bytes | np.ndarray | Image.Image


# Pillow filters a resize may use: bilinear is the paper's; bicubic is what Hugging Face ViT
# processors are often saved with (resample=3), and a model is best fed what it was trained on.
RESAMPLING = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw images become model input; stored in checkpoints and artifact metadata."""

    size: int = 224
    crop_border: bool = False
    border_threshold: int = 20
    resample: str = "bilinear"  # a key of RESAMPLING; dicts written before it existed mean bilinear

    def __post_init__(self) -> None:
        """Every field checked, never coerced: this is read from checkpoints and artifacts (JSON)."""
        if self.resample not in RESAMPLING:
            raise EdgeskinError(f"preprocess.resample must be one of {', '.join(RESAMPLING)}, got {shown(self.resample)}")
        if not isinstance(self.crop_border, bool):
            raise EdgeskinError(f"preprocess.crop_border must be true or false, got {shown(self.crop_border)}")
        for name, low, high in (("size", 1, MAX_INPUT_SIZE), ("border_threshold", 0, 255)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise EdgeskinError(f"preprocess.{name} must be an integer from {low} to {high}, got {shown(value)}")

    def to_dict(self) -> dict:
        return {"size": self.size, "crop_border": self.crop_border, "border_threshold": self.border_threshold,
                "resample": self.resample}

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        """From a checkpoint's or an artifact's JSON; wrong types are refused, not coerced."""
        if not isinstance(data, dict):
            raise EdgeskinError(f"preprocess must be a mapping, got {type(data).__name__}")
        return cls(size=data.get("size", 224), crop_border=data.get("crop_border", False),
                   border_threshold=data.get("border_threshold", 20), resample=data.get("resample", "bilinear"))


def _describe(source: object) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"<{type(source).__name__}>"


def check_image_type(source: object, where: str = "image") -> None:
    """Refuse, as a TypeError, anything that is not one image (None, a number, a list...)."""
    if not isinstance(source, IMAGE_TYPES) and not isinstance(source, os.PathLike):
        raise EdgeskinTypeError(f"{where}: expected a path, bytes, a uint8 pixel array or a PIL image, "
                                f"got {type(source).__name__}")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit scaled down, alpha composited onto black."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr * (255.0 / peak), 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def _upright(img: Image.Image) -> Image.Image:
    """The EXIF orientation applied. Unreadable EXIF (common in phone photos) means "as stored":
    ImageOps.exif_transpose raises on wrongly typed tags when it rewrites them, so it is not used."""
    try:
        orientation = img.getexif().get(_ORIENTATION_TAG)
    except Exception:  # any malformed EXIF block: the pixels are still good
        return img
    method = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return img.transpose(method) if method is not None else img


def _shrink(img: Image.Image, size: int) -> Image.Image:
    """An image far larger than size x size reduced by a whole factor (down to KEEP_FACTOR x size)."""
    factor = min(img.size) // (KEEP_FACTOR * size)
    if factor < 2:
        return img
    try:
        return img.reduce(factor)
    except ValueError:  # modes reduce() does not take (1-bit, palette, 16-bit): every factor-th pixel
        return img.resize((max(1, img.width // factor), max(1, img.height // factor)), Image.NEAREST)


def _open_bounded(source: ImageSource, name: str, size: int | None) -> Image.Image:
    """Open a file or bytes and check its size before decoding; JPEGs drafted toward `size`."""
    opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else regular_file(source, "image file"))
    width, height = opened.size
    if width * height > MAX_PIXELS:
        raise EdgeskinError.about(name, f"image is {width}x{height}, over the {MAX_PIXELS:,} pixel limit")
    if size and opened.format == "JPEG":
        opened.draft(opened.mode, (KEEP_FACTOR * size, KEEP_FACTOR * size))
    needed = opened.width * opened.height * _BYTES_PER_PIXEL.get(opened.mode, 4)
    if needed > MAX_DECODED_BYTES:
        raise EdgeskinError.about(name, f"image is {width}x{height} {opened.mode}: decoding it needs {needed / 2**20:.0f} MB, "
                                  f"over the {MAX_DECODED_BYTES / 2**20:.0f} MB per-image limit")
    return opened


def _decoded(source: ImageSource, size: int | None) -> Image.Image:
    """One image as upright 8-bit RGB; with `size`, reduced on the way when far larger than that.

    This is the per-file boundary of every batch: whatever a hostile file makes Pillow or one of
    its plugins raise becomes an EdgeskinError naming the file, so the batch goes on.
    """
    check_image_type(source)
    name = _describe(source)
    try:
        img = source if isinstance(source, Image.Image) else _open_bounded(source, name, size)
        if img.width == 0 or img.height == 0:
            raise EdgeskinError.about(name, "image has no pixels")
        img.load()
        return _to_rgb(_upright(_shrink(img, size) if size else img))
    except EdgeskinError:
        raise
    except UnidentifiedImageError:
        raise EdgeskinError.about(name, "not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise EdgeskinError.about(name, f"refused as a decompression bomb ({one_line(exc)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise EdgeskinError.about(name, f"corrupt or truncated image ({one_line(exc)})") from None
    except MemoryError:
        raise EdgeskinError.about(name, "not enough memory to decode this image") from None
    except Exception as exc:  # a plugin's NotImplementedError, RuntimeError, struct.error...
        raise EdgeskinError.about(name, f"cannot decode this image ({type(exc).__name__}: {one_line(exc)})") from None


def decode_image(source: ImageSource) -> np.ndarray:
    """Decode to a full-size HxWx3 uint8 array, honouring EXIF orientation; bad input -> EdgeskinError."""
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    return np.asarray(_decoded(source, None), dtype=np.uint8).copy()


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise EdgeskinError(f"<ndarray>: expected HxW, HxWx3 or HxWx4 pixels, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise EdgeskinError(f"<ndarray>: expected uint8 pixels, got {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise EdgeskinError(f"<ndarray>: image has no pixels (shape {arr.shape})")
    return np.ascontiguousarray(arr[:, :, :3])


def _largest_region_labels(mask: np.ndarray) -> np.ndarray:
    """Connected-component labels (4-neighbour) by vectorized max-propagation; 0 = background."""
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), 0)
    while True:
        grown = labels.copy()
        grown[1:, :] = np.maximum(grown[1:, :], labels[:-1, :])
        grown[:-1, :] = np.maximum(grown[:-1, :], labels[1:, :])
        grown[:, 1:] = np.maximum(grown[:, 1:], labels[:, :-1])
        grown[:, :-1] = np.maximum(grown[:, :-1], labels[:, 1:])
        grown = np.where(mask, grown, 0)
        if np.array_equal(grown, labels):
            return labels
        labels = grown


def crop_black_border(rgb: np.ndarray, threshold: int = 20) -> np.ndarray:
    """Crop to the bounding box of the largest region brighter than `threshold` (paper's step).

    Dermatoscope images often carry a black circular vignette; the paper crops it away.
    The region search runs on a <=128 px thumbnail, so it costs milliseconds on any image.
    """
    height, width = rgb.shape[:2]
    gray = Image.fromarray(rgb).convert("L")
    scale = max(height, width) / 128.0
    if scale > 1:
        gray = gray.resize((max(1, round(width / scale)), max(1, round(height / scale))), Image.BILINEAR)
    else:
        scale = 1.0
    mask = np.asarray(gray) > threshold
    if not mask.any():
        return rgb
    labels = _largest_region_labels(mask)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    rows, cols = np.nonzero(labels == counts.argmax())
    top, bottom = int(rows.min() * scale), int(np.ceil((rows.max() + 1) * scale))
    left, right = int(cols.min() * scale), int(np.ceil((cols.max() + 1) * scale))
    cropped = rgb[max(0, top) : min(height, bottom), max(0, left) : min(width, right)]
    return cropped if cropped.size else rgb


def resize(rgb: np.ndarray, size: int, resample: str = "bilinear") -> np.ndarray:
    """Straight resize to size x size (aspect ratio not kept), as in the paper; bilinear unless the
    model was trained on another filter (RESAMPLING)."""
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), RESAMPLING[resample]), dtype=np.uint8)


def preprocess(source: ImageSource, config: PreprocessConfig | None = None) -> np.ndarray:
    """Image (path, bytes, PIL image or uint8 array) -> uint8 RGB array of shape (size, size, 3)."""
    config = config or PreprocessConfig()
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source)
    else:  # decoded reduced when far larger than the input: bounded memory, same pixels for every caller
        rgb = np.asarray(_decoded(source, config.size), dtype=np.uint8)
    if config.crop_border:
        rgb = crop_black_border(rgb, config.border_threshold)
    return resize(rgb, config.size, config.resample)
