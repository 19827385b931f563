"""The format table: every artifact format edgeskin writes, and everything that differs by format.

One row per format, the way converters/recipes.py holds the recipes: the file suffix, whether
it is a folder, the tensor layout, how its embedded metadata is read, which runtime backend
runs it, and - as "module:function" names, resolved only by the layers above the runtime that
use them - how the converter embeds the metadata and how the divergence analysis reads
intermediate tensors. Adding a format is a row here plus the functions it names.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import EdgeskinError
from .metadata import METADATA_NAME, ArtifactMetadata, read_tflite_metadata
from .paths import read_bytes


def _tflite_entries(path: Path) -> dict[str, bytes]:
    return read_tflite_metadata(read_bytes(path, "model file"), path)


def _onnx_entries(path: Path) -> dict[str, bytes]:
    """ModelProto.metadata_props (field 14, key 1 / value 2), read without onnxruntime."""
    from . import protowire as pw

    model = pw.parse(read_bytes(path, "model file"), path)
    return {pw.text(entry, 1): pw.first(entry, 2, b"") for entry in pw.messages(model, 14, path)}


def _coreml_entries(path: Path) -> dict[str, bytes]:
    from .mlpackage import read_package_metadata

    return {key: value.encode() for key, value in read_package_metadata(path).items()}


def _import_tflite() -> None:
    from .backends import tflite_interpreter_class

    tflite_interpreter_class()


def _import_onnxruntime() -> None:
    importlib.import_module("onnxruntime")


def _import_nothing() -> None:
    """The Core ML checker is edgeskin's own numpy code; Core ML itself comes with macOS."""


def _tflite_backend(path: Path, threads: int | None, checker: bool):
    from .backends import TFLiteBackend

    return TFLiteBackend(path, threads)


def _onnx_backend(path: Path, threads: int | None, checker: bool):
    from .backends import OnnxBackend

    return OnnxBackend(path, threads)


def _coreml_backend(path: Path, threads: int | None, checker: bool):
    """Core ML itself on macOS; elsewhere (or with checker=True) edgeskin's numpy checker. A
    multifunction (anytime) package gets a backend that runs its functions as stages."""
    from .mlpackage import package_functions

    functions = package_functions(path)
    if functions:
        from .coreml_stages import CoreMLStagesBackend

        return CoreMLStagesBackend(path, functions, threads, prefer_checker=checker)
    from .coreml import coreml_backend

    return coreml_backend(path, threads, prefer_checker=checker)


@dataclass(frozen=True)
class Format:
    target: str  # the name users pass to `convert --target`
    suffix: str
    is_package: bool  # a folder, not a file
    layout: str  # input tensor layout: "NHWC" or "NCHW" (pixels are 0..255 RGB either way)
    read_entries: Callable[[Path], dict[str, bytes]]  # the file's named metadata entries
    import_runtime: Callable[[], None]  # import the runtime library alone (benchmarks time it apart from loading)
    open_backend: Callable[[Path, int | None, bool], object]  # (path, threads, prefer checker) -> backend
    embed: str  # "module:function" (converter side): (probe path, ArtifactMetadata, destination) -> None
    intermediates: str  # "module:function" (divergence): (predictor, pixels, blocks) -> per-image tensors


FORMATS: tuple[Format, ...] = (
    Format("tflite", ".tflite", False, "NHWC", _tflite_entries, _import_tflite, _tflite_backend,
           "edgeskin.converters.tflite:embed_metadata_file", "edgeskin.divergence:tflite_stream"),
    Format("onnx", ".onnx", False, "NCHW", _onnx_entries, _import_onnxruntime, _onnx_backend,
           "edgeskin.converters.onnx:embed_metadata_file", "edgeskin.divergence:onnx_stream"),
    Format("coreml", ".mlpackage", True, "NCHW", _coreml_entries, _import_nothing, _coreml_backend,
           "edgeskin.converters.coreml:embed_coreml_metadata", "edgeskin.divergence:coreml_stream"),
)
ARTIFACT_SUFFIXES: tuple[str, ...] = tuple(f.suffix for f in FORMATS)
TARGETS: tuple[str, ...] = tuple(f.target for f in FORMATS)


def is_artifact(path: str | Path) -> bool:
    return Path(path).suffix in ARTIFACT_SUFFIXES


def format_of(path: str | Path) -> Format:
    """The row for a file, by suffix; anything else is a one-line error naming the file."""
    for row in FORMATS:
        if Path(path).suffix == row.suffix:
            return row
    raise EdgeskinError.about(path, f"not an artifact edgeskin knows ({', '.join(ARTIFACT_SUFFIXES)})")


def format_for_target(target: str) -> Format:
    for row in FORMATS:
        if row.target == target:
            return row
    raise EdgeskinError(f"unknown target '{target}' (known: {', '.join(TARGETS)})")


def resolve(reference: str) -> Callable:
    """A "module:function" column -> the function (imported on first use, by the layer that needs it)."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def read_artifact_metadata(path: str | Path) -> ArtifactMetadata:
    """The edgeskin metadata embedded in an artifact of any format, read without a model runtime."""
    path = Path(path)
    row = format_of(path)
    if row.is_package and not path.is_dir():
        raise EdgeskinError.about(path, "no such model package (a folder)" if not os.path.lexists(path) else "is not a folder")
    entries = row.read_entries(path)
    if METADATA_NAME not in entries:
        raise EdgeskinError.about(path, "has no edgeskin metadata (not converted by edgeskin?)")
    return ArtifactMetadata.from_json(entries[METADATA_NAME], path)
