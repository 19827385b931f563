"""Read a Core ML `.mlpackage` (an ML Program) without coremltools: description, metadata, the MIL
program and its weights.

Field numbers follow Core ML's public Model.proto / MIL.proto; weights follow the MIL blob file
layout (a 64-byte header, then per tensor a 64-byte record with sentinel 0xDEADBEEF, data type,
size and offset). Everything is checked as it is read, so a truncated or foreign file is a
one-line error instead of a wrong number.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import protowire as pw
from .errors import EdgeskinError
from .milops import unpack_indices

MIL_DTYPES = {1: "bool", 2: "string", 10: "float16", 11: "float32", 12: "float64", 21: "int8", 22: "int16", 23: "int32",
              24: "int64", 31: "uint8", 32: "uint16", 33: "uint32", 34: "uint64"}
SUB_BYTE_DTYPES = {25: "int4", 35: "uint4", 36: "uint2", 37: "uint1", 38: "uint6", 39: "uint3"}
SUB_BYTE_BITS = {"int4": 4, "uint4": 4, "uint2": 2, "uint1": 1, "uint6": 6, "uint3": 3}
BLOB_SENTINEL = 0xDEADBEEF


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # numpy dtype name, "string", "dict", "list"
    shape: tuple[int, ...] | None  # None when not a tensor or not static


@dataclass(frozen=True)
class Ref:
    """A binding to another op's output (as opposed to a constant value written inline)."""

    name: str


@dataclass(frozen=True)
class MilOp:
    type: str
    inputs: dict[str, list]  # parameter -> bindings: Ref(variable name) or a constant value
    outputs: tuple[str, ...]
    output_info: tuple[TensorInfo, ...]
    attributes: dict[str, object]


@dataclass(frozen=True)
class MilProgram:
    inputs: dict[str, TensorInfo]
    ops: tuple[MilOp, ...]
    outputs: tuple[str, ...]
    opset: str

    def types(self) -> dict[str, TensorInfo]:
        """Every variable (inputs and every op's outputs) -> its declared type."""
        found = dict(self.inputs)
        for op in self.ops:
            found.update(zip(op.outputs, op.output_info, strict=True))
        return found


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "image", "multiArray", "dictionary", "string", ...


@dataclass(frozen=True)
class CoreMLPackage:
    path: Path
    inputs: tuple[Feature, ...]
    outputs: tuple[Feature, ...]
    predicted_probabilities: str  # the classifier's class -> probability output
    program: MilProgram  # the function read (read_package's `function`)
    functions: tuple[str, ...] = ()  # a multifunction package's functions; () when it has only main
    function: str = "main"


def model_file(package: Path) -> Path:
    """The model.mlmodel inside a package, found through its Manifest.json."""
    manifest = package / "Manifest.json"
    if not package.is_dir() or not manifest.is_file():
        raise EdgeskinError.about(package, "not a Core ML package (no Manifest.json inside)")
    try:
        info = json.loads(manifest.read_text())
        root = info["itemInfoEntries"][info["rootModelIdentifier"]]["path"]
    except (ValueError, KeyError, TypeError):
        raise EdgeskinError.about(manifest, "malformed Core ML package manifest") from None
    path = package / "Data" / root
    if not path.is_file():
        raise EdgeskinError.about(package, f"the model file named by its manifest is missing (Data/{root})")
    return path


class _BlobReader:
    """Weights stored outside the protobuf, read on demand and checked against their declared type."""

    def __init__(self, model_dir: Path, source: Path) -> None:
        self.model_dir, self.source = model_dir, source
        self.files: dict[str, bytes] = {}

    def read(self, name: str, offset: int, info: TensorInfo) -> np.ndarray:
        path = self.model_dir / name.removeprefix("@model_path/")
        if name not in self.files:
            if not path.is_file():
                raise EdgeskinError.about(self.source, f"weight file {name} is missing")
            self.files[name] = path.read_bytes()
        data = self.files[name]
        where = f"weight file {path.name}"
        if offset + 64 > len(data):
            raise EdgeskinError.about(self.source, f"{where} is truncated (record at {offset} past its end, {len(data)} bytes)")
        sentinel, _, size, start = struct.unpack_from("<IIQQ", data, offset)
        if sentinel != BLOB_SENTINEL:
            raise EdgeskinError.about(self.source, f"{where} is corrupt (no blob record at offset {offset})")
        if start + size > len(data):
            raise EdgeskinError.about(self.source, f"{where} is truncated (tensor at {start}+{size} past its end, {len(data)} bytes)")
        raw = data[start : start + size]
        if info.dtype in SUB_BYTE_DTYPES.values():
            return sub_byte_values(raw, info, self.source)
        count = int(np.prod(info.shape)) if info.shape else 1
        if count * np.dtype(info.dtype).itemsize != size:
            raise EdgeskinError.about(self.source, f"{where}: tensor at {offset} has {size} bytes, its type needs "
                                      f"{count * np.dtype(info.dtype).itemsize}")
        return np.frombuffer(raw, info.dtype).reshape(info.shape).copy()


def sub_byte_values(raw: bytes, info: TensorInfo, source) -> np.ndarray:
    """A packed sub-byte tensor (int4, uint4, ...; iOS18 palette indices) unpacked to its shape."""
    bits, count = SUB_BYTE_BITS[info.dtype], int(np.prod(info.shape)) if info.shape else 0
    if info.shape is None or len(raw) * 8 < count * bits:
        raise EdgeskinError.about(source, f"a {info.dtype} tensor of {len(raw)} bytes cannot hold shape {info.shape}")
    values = unpack_indices(np.frombuffer(raw, np.uint8), bits, count)
    if info.dtype == "int4":
        values = np.where(values >= 8, values - 16, values)
    return values.astype(np.int8 if info.dtype == "int4" else np.uint8).reshape(info.shape)


def _value_type(fields: pw.Fields, source) -> TensorInfo:
    tensor = pw.message(fields, 1, source)
    if not tensor:
        kind = "list" if 2 in fields else "tuple" if 3 in fields else "dict" if 4 in fields else "unknown"
        return TensorInfo(kind, None)
    code = pw.first(tensor, 1, 0)
    dtype = MIL_DTYPES.get(code) or SUB_BYTE_DTYPES.get(code) or f"dtype#{code}"
    dims = []
    for dim in pw.messages(tensor, 3, source):
        constant = pw.message(dim, 1, source)
        dims.append(pw.first(constant, 1, 0) if constant or 1 in dim else -1)
    return TensorInfo(dtype, tuple(dims) if all(d >= 0 for d in dims) else None)


def _repeated(fields: pw.Fields, decode) -> list:
    values = []
    for item in fields.get(1, []):
        values.extend(decode(item) if isinstance(item, bytes) else [pw.signed(item)])
    return values


def _tensor_value(fields: pw.Fields, info: TensorInfo, source):
    shape = info.shape if info.shape is not None else None
    if 4 in fields:  # strings
        strings = [s.decode("utf-8") for s in pw.message(fields, 4, source).get(1, [])]
        return strings[0] if shape == () else strings
    if 7 in fields:  # raw bytes, interpreted by the declared type
        raw = pw.first(pw.message(fields, 7, source), 1, b"")
        if info.dtype in SUB_BYTE_DTYPES.values():
            return sub_byte_values(raw, info, source)
        array = np.frombuffer(raw, info.dtype).copy()
    elif 1 in fields:
        array = np.array(_repeated(pw.message(fields, 1, source), pw.packed_floats), np.float32)
    elif 6 in fields:
        array = np.array(_repeated(pw.message(fields, 6, source), pw.packed_doubles), np.float64)
    elif 2 in fields or 5 in fields or 3 in fields:
        number = 2 if 2 in fields else 5 if 5 in fields else 3
        array = np.array(_repeated(pw.message(fields, number, source), pw.packed_varints), np.int64)
    else:
        array = np.zeros(0, np.float32)
    dtype = info.dtype if info.dtype in MIL_DTYPES.values() and info.dtype != "string" else array.dtype
    array = array.astype(dtype)
    return array.reshape(shape) if shape is not None and array.size == int(np.prod(shape)) else array


def decode_value(data: bytes, blobs: _BlobReader, source):
    """A MIL Value: an immediate tensor / list, or a tensor in a weight file."""
    fields = pw.parse(data, source)
    info = _value_type(pw.message(fields, 2, source), source)
    blob = pw.message(fields, 5, source)
    if blob:
        return blobs.read(pw.text(blob, 1), pw.first(blob, 2, 0), info)
    immediate = pw.message(fields, 3, source)
    if 1 in immediate:
        return _tensor_value(pw.message(immediate, 1, source), info, source)
    if 3 in immediate:  # ListValue: repeated Value
        return [decode_value(v, blobs, source) for v in pw.message(immediate, 3, source).get(1, [])]
    raise EdgeskinError.about(source, f"unsupported MIL value kind ({sorted(immediate)})")


def _named_types(items: list[bytes], source) -> list[tuple[str, TensorInfo]]:
    named = []
    for item in items:
        fields = pw.parse(item, source)
        named.append((pw.text(fields, 1), _value_type(pw.message(fields, 2, source), source)))
    return named


def _operation(data: bytes, blobs: _BlobReader, source) -> MilOp:
    fields = pw.parse(data, source)
    inputs = {}
    for name, argument in pw.string_map(fields, 2, source).items():
        bindings = []
        for binding in pw.messages(pw.parse(argument, source), 1, source):
            bindings.append(Ref(pw.text(binding, 1)) if 1 in binding else decode_value(pw.first(binding, 2), blobs, source))
        inputs[name] = bindings
    outputs = _named_types(fields.get(3, []), source)
    if fields.get(4):
        raise EdgeskinError.about(source, f"op {pw.text(fields, 1)} has nested blocks (control flow), which the checker does not run")
    # const ops keep their value in "val"; iOS16 constexpr ops keep all their data as attributes
    attributes = {name: decode_value(value, blobs, source) for name, value in pw.string_map(fields, 5, source).items()
                  if name != "name"}
    return MilOp(pw.text(fields, 1), inputs, tuple(n for n, _ in outputs), tuple(i for _, i in outputs), attributes)


def _program(fields: pw.Fields, blobs: _BlobReader, source, name: str = "main") -> MilProgram:
    functions = pw.string_map(fields, 2, source)
    if name not in functions:
        raise EdgeskinError.about(source, f"its ML Program has no '{name}' function (it has: {', '.join(functions) or 'none'})")
    function = pw.parse(functions[name], source)
    opset = pw.text(function, 2)
    blocks = pw.string_map(function, 3, source)
    if opset not in blocks:
        raise EdgeskinError.about(source, f"its {name} function has no block for opset {opset}")
    block = pw.parse(blocks[opset], source)
    ops = tuple(_operation(op, blobs, source) for op in block.get(3, []))
    outputs = tuple(o.decode("utf-8") for o in block.get(2, []))
    return MilProgram(dict(_named_types(function.get(1, []), source)), ops, outputs, opset)


def _features(items: list[bytes], source) -> tuple[Feature, ...]:
    kinds = {3: "string", 4: "image", 5: "multiArray", 6: "dictionary", 1: "int64", 2: "double"}
    features = []
    for item in items:
        fields = pw.parse(item, source)
        feature_type = pw.message(fields, 3, source)
        kind = next((kinds[k] for k in kinds if k in feature_type), "other")
        features.append(Feature(pw.text(fields, 1), kind))
    return tuple(features)


def _parsed_model(package: Path) -> tuple[pw.Fields, Path]:
    path = model_file(package)
    return pw.parse(path.read_bytes(), path), path


def _function_descriptions(description: pw.Fields, source) -> dict[str, pw.Fields]:
    """A multifunction package's FunctionDescriptions by name (ModelDescription.functions, field 20)."""
    return {pw.text(f, 1): f for f in pw.messages(description, 20, source)}


def read_functions(package: str | Path, functions: list[str] | None = None, default: bool = False) -> dict[str, CoreMLPackage]:
    """Functions of a package by name, parsed once with one weight reader: main, or in a
    multifunction package the ones named (none named: every function; default=True: its default one)."""
    package = Path(package)
    model, path = _parsed_model(package)
    description = pw.message(model, 2, path)
    if 502 not in model:
        raise EdgeskinError.about(package, "is not an ML Program (neural-network .mlmodel formats are not supported)")
    blobs = _BlobReader(path.parent, package)
    described = _function_descriptions(description, path)
    if not described and any(f != "main" for f in functions or []):
        raise EdgeskinError.about(package, f"has one function, main; asked for {', '.join(functions)}")
    if default:
        functions = [pw.text(description, 21)] if described else ["main"]
    programs = pw.message(model, 502, path)
    found = {}
    for function in functions or list(described) or ["main"]:
        if described:  # FunctionDescription: input 2, output 3, predictedProbabilitiesName 5
            if function not in described:
                raise EdgeskinError.about(package, f"has no function {function!r} (it has: {', '.join(described)})")
            fields, numbers = described[function], (2, 3, 5)
        else:
            fields, numbers = description, (1, 10, 12)
        program = _program(programs, blobs, package, function)
        found[function] = CoreMLPackage(package, _features(fields.get(numbers[0], []), path), _features(fields.get(numbers[1], []), path),
                                        pw.text(fields, numbers[2]), program, tuple(described), function)
    return found


def read_package(package: str | Path, function: str | None = None) -> CoreMLPackage:
    """The package's main function, or in a multifunction package the one named (default: its default function)."""
    (found,) = read_functions(package, [function] if function else None, default=function is None).values()
    return found


def package_functions(package: str | Path) -> tuple[str, ...]:
    """The function names of a multifunction package; () for a package with only main (cheap: no weights read)."""
    model, path = _parsed_model(Path(package))
    return tuple(_function_descriptions(pw.message(model, 2, path), path))


def read_package_metadata(package: str | Path) -> dict[str, str]:
    """Only the user-defined metadata (cheap: the program's weights are not read)."""
    model, path = _parsed_model(Path(package))
    metadata = pw.message(pw.message(model, 2, path), 100, path)
    return {key: value.decode("utf-8", "replace") for key, value in pw.string_map(metadata, 100, path).items()}
