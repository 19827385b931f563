"""The single preprocessing path: decode edge cases, border crop, resize, clear errors."""

from __future__ import annotations

import importlib
import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from edgeskin.runtime import EdgeskinError, PreprocessConfig, decode_image, preprocess

# the package re-exports the function `preprocess`, which shadows the module of the same name
pp = importlib.import_module("edgeskin.runtime.preprocess")


def _save(img: Image.Image, path, fmt="PNG", **kw):
    img.save(path, fmt, **kw)
    return path


def test_real_sample_gives_uint8_224(samples_dir):
    out = preprocess(samples_dir / "ISIC_0000002.jpg")
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert 20 < out.mean() < 235 and out.std() > 5  # a real photo, not a constant


def test_resize_is_straight_bilinear_not_aspect_preserving():
    src = np.zeros((100, 400, 3), np.uint8)
    src[:, 200:] = 255
    out = preprocess(src, PreprocessConfig(size=224))
    assert out.shape == (224, 224, 3)
    # left half black, right half white: the aspect ratio was not kept (no padding, no crop)
    assert out[:, :100].max() == 0 and out[:, 124:].min() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, "JPEG", exif=exif, quality=95)
    out = decode_image(path)
    assert out.shape == (40, 20, 3)  # portrait after transpose
    assert out[:20, :, 0].mean() > 200 and out[20:, :, 0].mean() < 60  # red moved to the top


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "LA"])
def test_modes_become_rgb(tmp_path, mode):
    base = Image.new("RGB", (32, 24), (200, 100, 50)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = decode_image(_save(base, tmp_path / f"x.{fmt.lower()}", fmt))
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    if mode not in ("L", "LA"):
        assert abs(int(out[0, 0, 0]) - 200) < 12 and abs(int(out[0, 0, 2]) - 50) < 12


def test_rgba_transparent_pixels_composite_to_black(tmp_path):
    img = Image.new("RGBA", (8, 8), (255, 255, 255, 0))
    out = decode_image(_save(img, tmp_path / "t.png"))
    assert out.max() == 0


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    arr = np.full((16, 16), 32768, dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(arr).save(path)
    out = decode_image(path)
    assert abs(int(out[0, 0, 0]) - 128) <= 1


def test_tiny_image_is_upscaled():
    out = preprocess(np.full((1, 1, 3), 77, np.uint8))
    assert out.shape == (224, 224, 3) and (out == 77).all()


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pp, "MAX_PIXELS", 100 * 100)
    path = _save(Image.new("RGB", (200, 200)), tmp_path / "big.png")
    with pytest.raises(EdgeskinError, match=r"big\.png: image is 200x200, over"):
        decode_image(path)


def test_truncated_jpeg_names_file(tmp_path, samples_dir):
    data = (samples_dir / "ISIC_0000002.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(EdgeskinError, match=r"cut\.jpg: corrupt or truncated image"):
        decode_image(path)


def test_text_file_and_missing_file(tmp_path):
    txt = tmp_path / "notes.jpg"
    txt.write_text("not an image")
    with pytest.raises(EdgeskinError, match=r"notes\.jpg: not an image"):
        decode_image(txt)
    with pytest.raises(EdgeskinError, match=r"nope\.jpg: no such image file"):
        decode_image(tmp_path / "nope.jpg")


def test_bytes_and_pil_inputs_match_path(samples_dir):
    path = samples_dir / "ISIC_0000015.jpg"
    ref = preprocess(path)
    assert np.array_equal(preprocess(path.read_bytes()), ref)
    assert np.array_equal(preprocess(Image.open(io.BytesIO(path.read_bytes()))), ref)


def test_black_border_crop_finds_largest_bright_region():
    img = np.zeros((300, 400, 3), np.uint8)
    img[50:250, 100:330] = 180  # the lesion field
    img[5:9, 5:9] = 255  # a small bright speck in the border: not the largest region
    out = pp.crop_black_border(img, threshold=20)
    # the search runs on a 128 px thumbnail (3.1 px per thumbnail pixel here): the box may be
    # one thumbnail pixel generous on each side, never tighter than the field
    assert 200 <= out.shape[0] <= 200 + 2 * 3.125 + 2 and 230 <= out.shape[1] <= 230 + 2 * 3.125 + 2
    assert out.mean() > 160


def test_crop_border_keeps_all_black_image():
    img = np.zeros((50, 60, 3), np.uint8)
    assert pp.crop_black_border(img).shape == img.shape


def test_crop_border_option_changes_pixels():
    img = np.zeros((300, 300, 3), np.uint8)
    img[75:225, 75:225] = np.arange(150, dtype=np.uint8)[None, :, None]
    plain = preprocess(img, PreprocessConfig())
    cropped = preprocess(img, PreprocessConfig(crop_border=True))
    assert plain[:30].max() == 0 and cropped[:, 40:].min() > 0


def test_resample_round_trips_and_old_dicts_mean_bilinear(samples_dir):
    """A bicubic model (Hugging Face resample=3) is fed bicubic pixels by every runtime reading the
    artifact's metadata; dicts written before the field existed still load, as bilinear."""
    old = {"size": 96, "crop_border": False, "border_threshold": 20}
    assert PreprocessConfig.from_dict(old).resample == "bilinear"
    bicubic = PreprocessConfig(size=96, resample="bicubic")
    assert PreprocessConfig.from_dict(bicubic.to_dict()) == bicubic
    image = Image.open(samples_dir / "ISIC_0000002.jpg").convert("RGB")
    ours = preprocess(samples_dir / "ISIC_0000002.jpg", bicubic)
    assert np.array_equal(ours, np.asarray(image.resize((96, 96), Image.BICUBIC)))
    assert np.abs(ours.astype(int) - preprocess(image, PreprocessConfig(size=96)).astype(int)).max() >= 5  # really another filter
    with pytest.raises(EdgeskinError, match='preprocess.resample must be one of bilinear, bicubic, got "lanczos"'):
        PreprocessConfig.from_dict({**old, "resample": "lanczos"})


def _jpeg_with_exif(tiff: bytes, size=(60, 40)) -> bytes:
    pixels = (np.arange(size[0] * size[1] * 3) % 251).astype(np.uint8).reshape(size[1], size[0], 3)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", exif=b"Exif\0\0" + tiff)
    return out.getvalue()


def _tiff_ifd(*entries: bytes) -> bytes:
    return b"II*\0" + struct.pack("<IH", 8, len(entries)) + b"".join(entries) + struct.pack("<I", 0)


def test_malformed_exif_still_decodes_and_keeps_its_orientation():
    """XResolution stored as ASCII: ImageOps.exif_transpose raises TypeError; edgeskin rotates anyway."""
    orientation = struct.pack("<HHI4s", 274, 3, 1, struct.pack("<H", 6) + b"\0\0")
    ascii_resolution = struct.pack("<HHI4s", 282, 2, 4, b"abc\0")
    data = _jpeg_with_exif(_tiff_ifd(orientation, ascii_resolution))
    with pytest.raises(TypeError):
        ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert decode_image(data).shape == (60, 40, 3)  # rotated upright, as orientation 6 says
    garbage = _jpeg_with_exif(b"II*\0" + struct.pack("<I", 10**6))  # first IFD far past the end
    assert decode_image(garbage).shape == (40, 60, 3)


def test_any_decoder_exception_is_the_files_one_line_error(monkeypatch, tmp_path):
    """A Pillow plugin raising NotImplementedError (a DDS with no pixel format does) stays one row."""
    path = tmp_path / "odd.png"
    Image.new("RGB", (8, 8)).save(path)

    def refuse(self):
        raise NotImplementedError("Unimplemented pixel format\nsecond line")

    monkeypatch.setattr(Image.Image, "load", refuse)
    with pytest.raises(EdgeskinError, match=r"^.*odd\.png: cannot decode this image \(NotImplementedError: Unimplemented pixel format\)$"):
        preprocess(path)


def test_decoded_bytes_are_capped_before_decoding(monkeypatch, tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGBA", (300, 200)).save(path)
    monkeypatch.setattr(pp, "MAX_DECODED_BYTES", 200_000)
    with pytest.raises(EdgeskinError, match=r"wide\.png: image is 300x200 RGBA: decoding it needs 0 MB, over the 0 MB per-image limit"):
        preprocess(path)
    Image.new("L", (300, 200)).save(path)  # one byte per pixel: 60 KB, under the cap
    assert preprocess(path).shape == (224, 224, 3)


def test_a_large_jpeg_is_decoded_reduced_with_nearly_the_same_pixels(tmp_path):
    """A 4032x3024 phone photo: libjpeg's draft decodes it at 1/4 size; the 224x224 input barely changes."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((4032, 3024), Image.BICUBIC)
    path = tmp_path / "phone.jpg"
    big.save(path, quality=95)
    reduced = preprocess(path)
    full = pp.resize(decode_image(path), 224)
    assert reduced.shape == (224, 224, 3)
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 2.0


@pytest.mark.parametrize("value", [None, 42, 3.5, ["a.jpg"], {"a": 1}])
def test_a_value_that_is_not_an_image_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"^image: expected a path, bytes, a uint8 pixel array or a PIL image, got "):
        preprocess(value)


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 10, 3), (10, 0)])
def test_empty_arrays_are_refused(shape):
    with pytest.raises(EdgeskinError, match=r"has no pixels"):
        preprocess(np.zeros(shape, np.uint8))
