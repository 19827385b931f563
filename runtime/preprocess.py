"""The one image preprocessing path (numpy + Pillow only).

Both the PyTorch reference and every artifact are fed pixels from `preprocess`, so the two
always see identical inputs. It stops at uint8 RGB 224x224: the normalization lives inside the
model graph (DESIGN.md section 3), so no caller can feed wrongly normalized pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import EdgeskinError

# Decoding is bounded: a JPEG header can promise gigapixels. 80 MP covers every dermatoscope.
MAX_PIXELS = 80_000_000

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
        if self.resample not in RESAMPLING:
            raise EdgeskinError(f"preprocess resample {self.resample!r}: expected one of {', '.join(RESAMPLING)}")

    def to_dict(self) -> dict:
        return {"size": self.size, "crop_border": self.crop_border, "border_threshold": self.border_threshold,
                "resample": self.resample}

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(
            size=int(data.get("size", 224)),
            crop_border=bool(data.get("crop_border", False)),
            border_threshold=int(data.get("border_threshold", 20)),
            resample=str(data.get("resample", "bilinear")),
        )


def _describe(source: ImageSource) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"<{type(source).__name__}>"


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit scaled down, alpha composited onto black."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
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


def decode_image(source: ImageSource) -> np.ndarray:
    """Decode to an HxWx3 uint8 array, honouring EXIF orientation; bad input -> EdgeskinError."""
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    name = _describe(source)
    try:
        if isinstance(source, Image.Image):
            img = source
        else:
            if isinstance(source, (str, Path)) and not Path(source).is_file():
                raise EdgeskinError.about(name, "no such image file")
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise EdgeskinError.about(name, f"image is {width}x{height}, over the {MAX_PIXELS:,} pixel limit")
        if width == 0 or height == 0:
            raise EdgeskinError.about(name, "image has no pixels")
        img.load()
        img = ImageOps.exif_transpose(img)
        return np.asarray(_to_rgb(img), dtype=np.uint8).copy()
    except EdgeskinError:
        raise
    except UnidentifiedImageError:
        raise EdgeskinError.about(name, "not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise EdgeskinError.about(name, f"refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise EdgeskinError.about(name, f"corrupt or truncated image ({exc})") from None


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise EdgeskinError(f"<ndarray>: expected HxW, HxWx3 or HxWx4 pixels, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise EdgeskinError(f"<ndarray>: expected uint8 pixels, got {arr.dtype}")
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
    rgb = decode_image(source)
    if config.crop_border:
        rgb = crop_black_border(rgb, config.border_threshold)
    return resize(rgb, config.size, config.resample)
