"""Artifact metadata: what every exported model carries about itself, readable without TensorFlow.

A .tflite file is a flatbuffer whose Model table has a `metadata` vector of (name, buffer)
pairs; edgeskin stores its JSON under the name "edgeskin". This module reads it with the
standard library alone (struct), so a Raspberry Pi needs nothing but numpy and a TFLite runtime.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field, fields

from .errors import EdgeskinError
from .model_contract import OUTPUT_ROLES, ModelContract
from .preprocess import PreprocessConfig

METADATA_NAME = "edgeskin"
TFLITE_IDENTIFIER = b"TFL3"
# Field indices in tflite's schema.fbs (vtable slot = 4 + 2 * index)
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


@dataclass(frozen=True)
class InputContract:
    """How to feed the artifact: shape, dtype, layout (and int8 scaling if any); pixels are 0..255 RGB."""

    shape: tuple[int, ...] = (1, 224, 224, 3)
    dtype: str = "float32"
    layout: str = "NHWC"
    scale: float | None = None  # quantized input: q = round(x / scale + zero_point)
    zero_point: int | None = None


@dataclass(frozen=True)
class ArtifactMetadata:
    model: str
    exit: int
    recipe: str
    target: str
    class_names: tuple[str, ...]
    input: InputContract = field(default_factory=InputContract)
    preprocess: dict = field(default_factory=dict)
    outputs: tuple[str, ...] = OUTPUT_ROLES
    # the model's normalization, for the record and for apps that must know it: it is applied inside
    # the graph, so callers feed 0..255 RGB pixels
    normalization: dict = field(default_factory=dict)
    source_checkpoint_sha256: str = ""
    converter: dict = field(default_factory=dict)  # tool -> version

    @property
    def contract(self) -> ModelContract:
        norm = self.normalization or {}
        return ModelContract(self.class_names, tuple(norm.get("mean", ())), tuple(norm.get("std", ())),
                             PreprocessConfig.from_dict(self.preprocess), self.outputs)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: object = "metadata") -> ArtifactMetadata:
        try:
            data = _known_fields(cls, json.loads(text))  # fields older or newer writers added are ignored
            data["input"] = InputContract(**_known_fields(InputContract, {k: tuple(v) if isinstance(v, list) else v
                                                                          for k, v in data["input"].items()}))
            for key in ("class_names", "outputs"):
                data[key] = tuple(data[key])
            return cls(**data)
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgeskinError.about(source, f"edgeskin metadata is malformed ({exc})") from None


def _known_fields(kind, data: dict) -> dict:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}


def _u32(buf: bytes, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


def _field(buf: bytes, table: int, index: int) -> int | None:
    """Absolute position of a table field, or None when absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vtable_size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * index
    if slot >= vtable_size:
        return None
    offset = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + offset if offset else None


def _vector(buf: bytes, field_pos: int) -> tuple[int, int]:
    start = field_pos + _u32(buf, field_pos)
    return start + 4, _u32(buf, start)


def _table_at(buf: bytes, pos: int) -> int:
    return pos + _u32(buf, pos)


def read_tflite_metadata(data: bytes, source: object = "<tflite>") -> dict[str, bytes]:
    """All (name -> bytes) metadata entries of a .tflite flatbuffer."""
    try:
        if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
            raise EdgeskinError.about(source, "not a TFLite model (no TFL3 identifier)")
        root = _u32(data, 0)
        entries: dict[str, bytes] = {}
        meta_field, buffers_field = _field(data, root, _MODEL_METADATA), _field(data, root, _MODEL_BUFFERS)
        if meta_field is None or buffers_field is None:
            return entries
        buffers_start, n_buffers = _vector(data, buffers_field)
        meta_start, n_meta = _vector(data, meta_field)
        for i in range(n_meta):
            table = _table_at(data, meta_start + 4 * i)
            name_pos, buffer_pos = _field(data, table, _METADATA_NAME), _field(data, table, _METADATA_BUFFER)
            if name_pos is None or buffer_pos is None:
                continue
            name_start, name_len = _vector(data, name_pos)
            index = _u32(data, buffer_pos)
            if index >= n_buffers:
                raise EdgeskinError.about(source, f"metadata buffer index {index} out of range")
            buffer = _table_at(data, buffers_start + 4 * index)
            data_pos = _field(data, buffer, _BUFFER_DATA)
            offset_pos, size_pos = _field(data, buffer, _BUFFER_OFFSET), _field(data, buffer, _BUFFER_SIZE)
            if data_pos is not None:
                start, length = _vector(data, data_pos)
                payload = data[start : start + length]
            elif offset_pos is not None and size_pos is not None:  # buffers stored after the flatbuffer (> 2 GB models)
                offset, size = struct.unpack_from("<Q", data, offset_pos)[0], struct.unpack_from("<Q", data, size_pos)[0]
                payload = data[offset : offset + size]
            else:
                payload = b""
            entries[bytes(data[name_start : name_start + name_len]).decode("utf-8", "replace")] = bytes(payload)
        return entries
    except (struct.error, IndexError) as exc:
        raise EdgeskinError.about(source, f"corrupt or truncated TFLite file ({exc})") from None
