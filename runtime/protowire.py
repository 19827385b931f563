"""A minimal protocol-buffers wire-format reader (standard library only).

Core ML packages store their model as a protobuf (`model.mlmodel`). Reading it through
coremltools would import torch and TensorFlow, which the runtime must never do, so the few
messages the Core ML checker needs are decoded here by field number (see runtime/mlpackage.py).
"""

from __future__ import annotations

import struct

from .errors import EdgeskinError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

Fields = dict[int, list]  # field number -> values in order (int for varints, bytes otherwise)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def parse(buf: bytes, source: object = "<protobuf>") -> Fields:
    """Decode one message into {field number: [values]}; nested messages stay bytes."""
    fields: Fields = {}
    pos, end = 0, len(buf)
    try:
        while pos < end:
            key, pos = _varint(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == VARINT:
                value, pos = _varint(buf, pos)
            elif wire == LENGTH:
                size, pos = _varint(buf, pos)
                if pos + size > end:
                    raise ValueError("length past the end of the message")
                value, pos = buf[pos : pos + size], pos + size
            elif wire == FIXED64:
                value, pos = buf[pos : pos + 8], pos + 8
            elif wire == FIXED32:
                value, pos = buf[pos : pos + 4], pos + 4
            else:
                raise ValueError(f"unknown wire type {wire}")
            fields.setdefault(number, []).append(value)
        if pos != end:
            raise ValueError("message ends inside a field")
    except (IndexError, ValueError) as exc:
        raise EdgeskinError.about(source, f"corrupt or truncated protobuf ({exc})") from None
    return fields


def first(fields: Fields, number: int, default=None):
    values = fields.get(number)
    return values[0] if values else default


def text(fields: Fields, number: int, default: str = "") -> str:
    value = first(fields, number)
    return value.decode("utf-8") if value is not None else default


def message(fields: Fields, number: int, source: object = "<protobuf>") -> Fields:
    value = first(fields, number)
    return parse(value, source) if value is not None else {}


def messages(fields: Fields, number: int, source: object = "<protobuf>") -> list[Fields]:
    return [parse(value, source) for value in fields.get(number, [])]


def string_map(fields: Fields, number: int, source: object = "<protobuf>") -> dict[str, bytes]:
    """A `map<string, Message>` field: {key: value message bytes}."""
    entries = {}
    for entry in messages(fields, number, source):
        entries[text(entry, 1)] = first(entry, 2, b"")
    return entries


def signed(value: int) -> int:
    """A varint read as int64 (negative numbers are 10-byte two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def packed_varints(data: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        values.append(signed(value))
    return values


def packed_floats(data: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(data) // 4}f", data)


def packed_doubles(data: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(data) // 8}d", data)
