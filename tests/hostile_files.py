"""Writers of hostile files for the issue-13 corpus (tests/hostile_corpus.py): images with malformed EXIF,
plugin-breaking DDS files, PNGs streamed so that a tiny file decodes to gigabytes, byte mutations,
rewritten .tflite metadata and safetensors headers, a zip bomb, a pickle payload, HF folders, FIFOs.
Everything is written at run time; nothing binary is in git.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
# EXIF images whose re-serialisation in PIL.ImageOps.exif_transpose raises (test_hostile checks it really does)
EXIF_RAISES = {"exif-xresolution-ascii": TypeError, "exif-imagewidth-ascii": struct.error,
               "exif-resolutionunit-undefined": struct.error, "exif-software-rational": AttributeError,
               "exif-artist-double": AttributeError, "exif-ycbcr-coefficients-ascii": TypeError}


# --- image writers ----------------------------------------------------------------------------------------


def _image(mode: str, size: tuple[int, int], seed: int = 0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32) * 255.0, mode="F")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16))
    rgb = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), "RGB")
    return rgb if mode == "RGB" else rgb.convert(mode)


def _save(img, path: Path, fmt: str, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)
    return path


def _ifd(entries, next_offset: int = 0, extra: bytes = b"") -> bytes:
    """A little-endian TIFF header and one IFD: entries are (tag, type, count, 4 value/offset bytes)."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")[:4]
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", next_offset) + extra


def _after_ifd(n_entries: int) -> bytes:
    """The offset of the bytes right after an IFD of n entries (where `extra` goes)."""
    return struct.pack("<I", 8 + 2 + 12 * n_entries + 4)


ORIENT_6 = (0x0112, 3, 1, struct.pack("<H", 6))  # rotate: makes exif_transpose re-serialise the EXIF


def exif_blocks() -> dict[str, bytes]:
    """Hand-built EXIF (TIFF) blocks: tags of the wrong type, out-of-range offsets, huge counts."""
    return {
        "exif-xresolution-ascii": _ifd([ORIENT_6, (0x011A, 2, 4, b"72\0\0")]),
        "exif-imagewidth-ascii": _ifd([ORIENT_6, (0x0100, 2, 4, b"ab\0\0")]),
        "exif-resolutionunit-undefined": _ifd([ORIENT_6, (0x0128, 7, 4, b"abcd")]),
        "exif-software-rational": _ifd([ORIENT_6, (0x0131, 5, 1, _after_ifd(2))], extra=struct.pack("<II", 7, 2)),
        "exif-artist-double": _ifd([ORIENT_6, (0x013B, 12, 1, _after_ifd(2))], extra=struct.pack("<d", 1.5)),
        "exif-ycbcr-coefficients-ascii": _ifd([ORIENT_6, (0x0211, 2, 4, b"ab\0\0")]),
        # malformed, but Pillow 13 skips these: they must classify
        "exif-orientation-string": _ifd([(0x0112, 2, 4, b"six\0")]),
        "exif-ifd-offset-out-of-range": _ifd([ORIENT_6, (0x8769, 4, 1, struct.pack("<I", 0x7FFFFFFF))]),
        "exif-huge-count": _ifd([ORIENT_6, (0x010F, 2, 0x7FFFFFFF, struct.pack("<I", 26))]),
        "exif-next-ifd-out-of-range": _ifd([ORIENT_6], next_offset=0x7FFFFFF0),
    }


def jpeg_with_exif(path: Path, tiff: bytes, size=(40, 30)) -> Path:
    return _save(_image("RGB", size, 1), path, "JPEG", exif=b"Exif\x00\x00" + tiff)


def dds(flags: int, fourcc: bytes = b"\0\0\0\0", size: int = 4) -> bytes:
    """A DDS file whose pixel format Pillow's plugin refuses with NotImplementedError."""
    header = struct.pack("<IIIIIII", 124, 0x1007, size, size, size * 4, 0, 1) + b"\0" * 44
    pixel_format = struct.pack("<II4sIIIII", 32, flags, fourcc, 32, 0xFF0000, 0xFF00, 0xFF, 0xFF000000)
    return b"DDS " + header + pixel_format + struct.pack("<IIIII", 0x1000, 0, 0, 0, 0) + b"\0" * (size * size * 4)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def streamed_png(path: Path, width: int, height: int, color_type: int = 6, depth: int = 16, rows: int | None = None) -> Path:
    """A PNG of `width` x `height` zero pixels written row by row through zlib: a few hundred KB on disk,
    width*height*8 bytes when decoded (RGBA 16-bit), and no memory to speak of to write. `rows`: stop
    after that many rows (a truncated stream: only the header matters for the pixel-limit cases)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" * (1 + width * channels * depth // 8)
    squeeze = zlib.compressobj(9)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)))
        pending = b""
        for _ in range(height if rows is None else rows):
            pending += squeeze.compress(row)
            if len(pending) > 1 << 16:
                out.write(_chunk(b"IDAT", pending))
                pending = b""
        out.write(_chunk(b"IDAT", pending + squeeze.flush()) + _chunk(b"IEND", b""))
    return path


def orientation_jpeg(path: Path, orientation: int) -> Path:
    return jpeg_with_exif(path, _ifd([(0x0112, 3, 1, struct.pack("<H", orientation))]), size=(48, 32))


# --- model and checkpoint writers ------------------------------------------------------------------------


def mutation_positions(size: int, count: int, seed: int) -> list[int]:
    """Seeded byte positions spread over a file: a third in its head (flatbuffer / protobuf tables), a third
    in its tail (metadata), a third anywhere."""
    rng = random.Random(seed)
    head, tail = min(size, 8192), max(0, size - 8192)
    third = count // 3
    picks = [rng.randrange(head) for _ in range(third)] + [rng.randrange(tail, size) for _ in range(third)]
    return sorted(picks + [rng.randrange(size) for _ in range(count - 2 * third)])


def mutated(data: bytes, position: int, width: int = 1) -> bytes:
    """`width` bytes at `position` flipped (one byte: xor 0xFF; several: set to 0xFF, a huge offset/length)."""
    out = bytearray(data)
    for i in range(position, min(len(out), position + width)):
        out[i] = out[i] ^ 0xFF if width == 1 else 0xFF
    return bytes(out)


def truncations(size: int) -> list[int]:
    return sorted({8, 64, size // 3, size // 2, size - 16})


def rewrite_tflite_metadata(source: Path, destination: Path, **changes) -> Path:
    """A copy of a .tflite whose embedded edgeskin metadata has `changes`, written with the embedder of
    that entry (edgeskin.converters.tflite.embed_metadata; the file's TFLite Metadata is not rewritten
    to match, its labels.txt is dropped); the graph is untouched."""
    from edgeskin.converters.tflite import embed_metadata
    from edgeskin.runtime.formats import read_artifact_metadata

    meta = read_artifact_metadata(source)
    for key in ("input",):
        if key in changes and isinstance(changes[key], dict):
            changes[key] = replace(meta.input, **changes[key])
    destination.write_bytes(embed_metadata(source.read_bytes(), replace(meta, **changes)))
    return destination


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str]) -> bytes:
    """A .safetensors file written by hand (zeros), so the generator needs no torch."""
    header, offset = {"__metadata__": metadata}, 0
    for name, (dtype, shape) in tensors.items():
        n = 4
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(offset)


def rewrite_safetensors_config(source: Path, destination: Path, edit) -> Path:
    """A copy of a native checkpoint whose header's `edgeskin.config` JSON is edit(config) (the weights
    after the header are copied as they are; their offsets are relative to the header's end)."""
    with open(source, "rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(size))
        weights = handle.read()
    config = json.loads(header["__metadata__"]["edgeskin.config"])
    header["__metadata__"]["edgeskin.config"] = json.dumps(edit(config))
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    destination.write_bytes(struct.pack("<Q", len(text)) + text + weights)
    return destination


def zip_bomb(path: Path, megabytes: int = 2048) -> Path:
    """A torch-style zip checkpoint whose data.pkl is `megabytes` MB of deflated zeros (~1 MB per GB on disk)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3\n")
        info = zipfile.ZipInfo("archive/data.pkl")
        info.compress_type = zipfile.ZIP_DEFLATED
        info._compresslevel = 9
        zeros = bytes(1 << 20)
        with archive.open(info, "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(zeros)
    return path


class _Payload:
    """Pickled as a call to os.system that creates `marker`: a checkpoint loader must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def pickle_payload(path: Path, marker: Path, zipped: bool) -> Path:
    payload = pickle.dumps({"weight": _Payload(marker)}, protocol=2)
    if zipped:  # torch's zip layout
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
            archive.writestr("archive/version", "3\n")
    else:
        path.write_bytes(payload)
    return path


def hf_folder(folder: Path, config) -> Path:
    """A Hugging Face ViT folder: config.json (any JSON value) + a small model.safetensors with vit./classifier keys."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    tensors = {"vit.embeddings.cls_token": ("F32", [1, 1, 8]), "vit.embeddings.position_embeddings": ("F32", [1, 5, 8]),
               "classifier.weight": ("F32", [8, 8]), "classifier.bias": ("F32", [8])}
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors, {"format": "pt"}))
    return folder


def hf_config(**changes) -> dict:
    config = {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": 8, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 32, "image_size": 32, "patch_size": 16,
              "id2label": {str(i): name for i, name in enumerate(CLASSES)}}
    config.update(changes)
    return config


def mkfifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


