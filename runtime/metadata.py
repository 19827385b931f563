"""Artifact metadata: what every exported model carries about itself, readable without TensorFlow.

A .tflite file is a flatbuffer whose Model table has a `metadata` vector of (name, buffer)
pairs; edgeskin stores its JSON under the name "edgeskin". It is read in place with the TFLite
schema's generated classes, which ship with ai-edge-litert (the Pi's runtime), so a Raspberry Pi
needs nothing beyond numpy, Pillow and `edgeskin[pi]`; the schema module is imported only when a
.tflite file is read, so importing the runtime still needs numpy and Pillow alone.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import struct
import zipfile
from dataclasses import asdict, dataclass, field, fields

from .errors import EdgeskinError, one_line
from .model_contract import OUTPUT_ROLES, ModelContract
from .preprocess import PreprocessConfig

METADATA_NAME = "edgeskin"
STANDARD_NAME = "TFLITE_METADATA"  # TFLite Metadata: what MediaPipe Tasks and the TFLite Task Library read
LABEL_FILE = "labels.txt"  # the associated file edgeskin's TFLite Metadata puts on the probabilities output
MAX_LABEL_FILE_BYTES = 1 << 20
# The TFLite schema's generated classes, in order of preference: ai-edge-litert's (edgeskin[pi]),
# TensorFlow's, then the `tflite` package's (an older schema: no Buffer.Offset/Size)
_SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated", "tflite")
# flatbuffers trusts every offset it reads: on corrupt bytes these come out of its readers
# (ValueError covers UnicodeDecodeError and numpy's "buffer is smaller than requested size")
_CORRUPT_FLATBUFFER = (struct.error, IndexError, TypeError, ValueError)


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
    route: str = ""  # the tool that built the file: litert-torch, onnx2tf, torch.onnx, coremltools
    model_version: str = ""  # `convert --model-version`; empty: the source checkpoint's sha256 names it
    # anytime files: the exit blocks their stages end at (runtime/stages.py), and the stored exit
    # policy, e.g. {"measure": "top1", "thresholds": {"2": 0.9, ...}, "chosen_on": ..., "budget": ...}
    stages: tuple[int, ...] = ()
    anytime: dict = field(default_factory=dict)

    @property
    def contract(self) -> ModelContract:
        norm = self.normalization or {}
        return ModelContract(self.class_names, tuple(norm.get("mean", ())), tuple(norm.get("std", ())),
                             PreprocessConfig.from_dict(self.preprocess), self.outputs)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: object = "metadata") -> ArtifactMetadata:
        """Parse and type-check the JSON: a wrong type here would be a wrong label or a traceback later."""
        try:
            data = _known_fields(cls, json.loads(text))  # fields older or newer writers added are ignored
            _check_types(data)
            data["input"] = InputContract(**_known_fields(InputContract, {k: tuple(v) if isinstance(v, list) else v
                                                                          for k, v in data.get("input", {}).items()}))
            for key in ("class_names", "outputs", "stages"):
                if key in data:
                    data[key] = tuple(data[key])
            metadata = cls(**data)
            metadata.contract.preprocess  # noqa: B018 - its own checks (size, resample) run now, not at first use
            return metadata
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise EdgeskinError.about(source, f"edgeskin metadata is malformed ({one_line(exc)})") from None
        except EdgeskinError as exc:
            raise EdgeskinError.about(source, f"edgeskin metadata is malformed ({exc})") from None


# field -> the JSON type it must have; the first five are required
_FIELD_TYPES = {"model": str, "exit": int, "recipe": str, "target": str, "class_names": list, "input": dict,
                "preprocess": dict, "outputs": list, "normalization": dict, "source_checkpoint_sha256": str,
                "converter": dict, "route": str, "model_version": str,
                "stages": list, "anytime": dict}
_REQUIRED = ("model", "exit", "recipe", "target", "class_names")
_INPUT_TYPES = {"shape": list, "dtype": str, "layout": str, "scale": (int, float, type(None)), "zero_point": (int, type(None))}


def _is(value: object, kind) -> bool:
    return isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, (int, type(None))))


def _check_types(data: dict) -> None:
    for name in _REQUIRED:
        if name not in data:
            raise KeyError(f"no {name!r}")
    for name, kind in _FIELD_TYPES.items():
        if name in data and not _is(data[name], kind):
            raise TypeError(f"{name} must be a JSON {kind.__name__}, got {type(data[name]).__name__}")
    names = data["class_names"]
    if not names or not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != len(names):
        raise ValueError("class_names must be unique non-empty strings")
    if not all(isinstance(n, str) for n in data.get("outputs", [])):
        raise ValueError("outputs must be strings")
    if data["exit"] < 1:
        raise ValueError(f"exit must be at least 1, got {data['exit']}")
    stages = data.get("stages", [])
    if stages and (not all(_is(k, int) and k >= 1 for k in stages) or stages != sorted(set(stages)) or stages[-1] != data["exit"]):
        raise ValueError(f"stages must be increasing exit blocks ending at the exit ({data['exit']}), got {stages}")
    for name, kind in _INPUT_TYPES.items():
        value = data.get("input", {}).get(name)
        if name in data.get("input", {}) and not _is(value, kind):
            raise TypeError(f"input.{name} has the wrong type ({type(value).__name__})")
    if not all(_is(d, int) and d > 0 for d in data.get("input", {}).get("shape", [1])):
        raise ValueError("input.shape must be positive integers")
    for key in ("mean", "std"):
        values = data.get("normalization", {}).get(key, [0.5] * 3)
        if not isinstance(values, list) or len(values) != 3 or not all(_is(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"normalization.{key} must be 3 finite numbers")


def _known_fields(kind, data: dict) -> dict:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}


def _tflite_schema(source: object):
    for name in _SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise EdgeskinError.about(source, "reading .tflite metadata needs ai-edge-litert: pip install 'edgeskin[pi]'")


def read_tflite_metadata(data: bytes, source: object = "<tflite>") -> dict[str, bytes]:
    """All (name -> bytes) metadata entries of a .tflite flatbuffer, read in place: the model
    (tens of MB of weights) is never unpacked."""
    schema = _tflite_schema(source)
    if not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise EdgeskinError.about(source, "not a TFLite model (no TFL3 identifier)")
    try:
        model = schema.Model.GetRootAs(data, 0)
        n_buffers, entries = model.BuffersLength(), {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            name, index = entry.Name(), entry.Buffer()
            if name is None:
                continue
            if index >= n_buffers:
                raise EdgeskinError.about(source, f"metadata buffer index {index} out of range")
            entries[name.decode("utf-8", "replace")] = _buffer_bytes(data, model.Buffers(index))
        return entries
    except _CORRUPT_FLATBUFFER as exc:
        raise EdgeskinError.about(source, f"corrupt or truncated TFLite file ({exc})") from None


def _buffer_bytes(data: bytes, buffer) -> bytes:
    if buffer.DataLength():
        return buffer.DataAsNumpy().tobytes()
    # a model over 2 GB keeps its buffers after the flatbuffer, at offsets from the file's start
    offset, size = (buffer.Offset(), buffer.Size()) if hasattr(buffer, "Offset") else (0, 0)
    if offset + size > len(data):
        raise ValueError(f"buffer of {size} bytes at {offset} runs past the end of the file")
    return bytes(data[offset : offset + size])


def packed_label_names(data: bytes) -> list[str] | None:
    """The lines of labels.txt in the zip that TFLite Metadata writers append after the flatbuffer;
    None when there is no such file (or the zip is unreadable)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as packed:
            info = packed.getinfo(LABEL_FILE)
            if info.file_size > MAX_LABEL_FILE_BYTES:
                return None
            return packed.read(info).decode("utf-8").splitlines()
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError, RuntimeError, NotImplementedError):
        return None


MEDIAPIPE_INPUT_TYPES = ("float32", "uint8")  # the image tensor types MediaPipe's ImageClassifier accepts


def app_metadata_line(data: bytes, entries: dict[str, bytes], metadata: ArtifactMetadata) -> str:
    """What `edgeskin info` says about a .tflite file's standard metadata (converters/tflite_metadata.py)."""
    class_names = metadata.class_names
    if metadata.stages:
        stored = (metadata.anytime or {}).get("thresholds") or {}
        policy = ", ".join(f"exit {k} >= {v}" for k, v in stored.items()) or "none stored"
        return (f"anytime file, a signature per stage ({', '.join(f'exit_{k}' for k in metadata.stages)}); stored "
                f"thresholds: {policy}; MediaPipe runs single-signature classifiers only: use edgeskin's runtime or "
                "the LiteRT Interpreter's signature runners")
    if STANDARD_NAME not in entries:
        return "none: MediaPipe's ImageClassifier and the TFLite Task Library refuse this file (convert it again)"
    labels = packed_label_names(data)
    if labels is None:
        return f"TFLite Metadata, but no readable {LABEL_FILE}"
    verdict = "= the classes" if tuple(labels) == tuple(class_names) else "DIFFERS from the classes: " + ", ".join(labels)
    line = f"TFLite Metadata (MediaPipe, TFLite Task Library), {LABEL_FILE} {verdict}"
    if metadata.input.dtype not in MEDIAPIPE_INPUT_TYPES:
        line += f"; MediaPipe takes {'/'.join(MEDIAPIPE_INPUT_TYPES)} images, not {metadata.input.dtype}: use the LiteRT Interpreter"
    return line
