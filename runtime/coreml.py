"""Core ML backends: the package's own MIL program run with numpy (any OS), or MLModel (macOS).

`MLModel.predict` exists on macOS only, and most users' CI is Linux. The checker evaluates the
converted program itself, op by op, from the package's protobuf and weight file (never the
source model), rounding to float16 wherever the program is float16 and decompressing int8 and
palettized weights as Core ML does. An op it does not know is an error, never a guess.
Both backends return the same outputs: class probabilities, then logits, in class order (OUTPUT_ROLES).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from .backends import TensorSpec
from .errors import EdgeskinError
from .metadata import OUTPUT_ROLES
from .milops import OPS
from .mlpackage import CoreMLPackage, MilOp, Ref, read_package

CHECKER_LABEL = "Core ML program, evaluated by edgeskin on Linux"
MACOS_LABEL = "Core ML MLModel.predict on macOS"
VARIADIC = {"values"}  # inputs that take a list of bindings (concat)
_ROUNDED = ("float16", "float32", "int8", "uint8", "int16", "int32", "int64", "bool")


class MilExecutor:
    """Runs a package's main function. Constants (and decompressed weights) are built once."""

    def __init__(self, package: CoreMLPackage) -> None:
        self.package = package
        self.program = package.program
        for op in self.program.ops:
            if op.type not in OPS and op.type != "const":
                raise EdgeskinError.about(package.path, f"unsupported op {op.type} (the Core ML checker knows: "
                                          f"const, {', '.join(sorted(OPS))})")
        self.constants: dict[str, object] = {}
        self.ops: list[MilOp] = []
        for op in self.program.ops:
            if op.type == "const":
                self._store(op, (op.attributes["val"],))
            elif op.type.startswith("constexpr_"):
                self._store(op, self._call(op, self.constants))
            else:
                self.ops.append(op)

    def _store(self, op: MilOp, values: tuple, into: dict | None = None) -> None:
        target = self.constants if into is None else into
        for name, info, value in zip(op.outputs, op.output_info, values, strict=True):
            if isinstance(value, np.ndarray) and info.dtype in _ROUNDED:
                value = value.astype(info.dtype)  # float16 programs are rounded at every op
            target[name] = value

    def _resolve(self, binding, values: dict):
        if isinstance(binding, Ref):
            if binding.name not in values:
                raise EdgeskinError.about(self.package.path, f"its program uses {binding.name} before it is defined")
            return values[binding.name]
        return binding

    def _call(self, op: MilOp, values: dict) -> tuple:
        # iOS16 constexpr ops carry their data as attributes, not inputs
        arguments = {k: v for k, v in op.attributes.items() if k != "name"} if op.type.startswith("constexpr_") else {}
        for name, bindings in op.inputs.items():
            resolved = [self._resolve(b, values) for b in bindings]
            arguments[name] = resolved if name in VARIADIC else resolved[0]
        try:
            return OPS[op.type](**arguments)
        except EdgeskinError as exc:
            raise EdgeskinError.about(self.package.path, f"op {op.type} ({op.outputs[0]}): {exc}") from None
        except (TypeError, ValueError, IndexError) as exc:
            raise EdgeskinError.about(self.package.path, f"op {op.type} ({op.outputs[0]}) cannot run: {exc}") from None

    def run(self, feeds: dict[str, np.ndarray], keep_all: bool = False) -> dict[str, object]:
        """Feeds by input name -> the program's outputs (every variable with keep_all)."""
        values = dict(self.constants)
        for name, info in self.program.inputs.items():
            if name not in feeds:
                raise EdgeskinError.about(self.package.path, f"missing input {name}")
            values[name] = np.asarray(feeds[name]).astype(info.dtype if info.dtype in _ROUNDED else "float32")
        for op in self.ops:
            self._store(op, self._call(op, values), values)
        return values if keep_all else {name: values[name] for name in self.program.outputs}


def _output_roles(package: CoreMLPackage) -> tuple[str, str, list[str]]:
    """(logits output name, probabilities dict name, class labels in output order)."""
    arrays = [f.name for f in package.outputs if f.kind == "multiArray"]
    classify = next((op for op in package.program.ops if op.type == "classify"), None)
    if classify is None or len(arrays) != 1 or not package.predicted_probabilities:
        raise EdgeskinError.about(package.path, "not an edgeskin classifier package (expected a classifier output and one "
                                  "logits array)")
    classes = classify.inputs["classes"][0]
    if isinstance(classes, Ref):
        classes = next(op.attributes["val"] for op in package.program.ops if classes.name in op.outputs)
    return arrays[0], package.predicted_probabilities, [str(c) for c in classes]


def _in_role_order(result: dict, probabilities_name: str, logits_name: str, classes: list[str]) -> list[np.ndarray]:
    """A package's named features -> [probabilities, logits] (OUTPUT_ROLES), each in class order."""
    probabilities = result[probabilities_name]
    return [np.array([[probabilities[c] for c in classes]], np.float32),
            np.asarray(result[logits_name], np.float32).reshape(1, -1)]


class CoreMLCheckerBackend:
    """The torch-free Core ML backend for Linux (and any OS): latency here says nothing about a phone."""

    runtime = CHECKER_LABEL

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.package = read_package(path)
        self.executor = MilExecutor(self.package)
        self.runtime_version = f"(numpy {np.__version__})"
        self.threads = threads or 1
        self.logits_name, self.probabilities_name, self.classes = _output_roles(self.package)
        (self.input_name, info), = self.package.program.inputs.items()
        self.inputs = [TensorSpec(self.input_name, info.shape or (1, 3, 224, 224), "float32")]
        n = len(self.classes)
        self.outputs = [TensorSpec(name, (1, n), "float32") for name in OUTPUT_ROLES]

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        result = self.executor.run({self.input_name: array})
        return _in_role_order(result, self.probabilities_name, self.logits_name, self.classes)


class CoreMLBackend:
    """MLModel.predict (macOS only): what an iPhone's Core ML computes, on a Mac."""

    runtime = MACOS_LABEL

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import coremltools as ct  # macOS: the real Core ML framework behind it

        self.package = read_package(path)
        self.logits_name, self.probabilities_name, self.classes = _output_roles(self.package)
        self.runtime_version = f"coremltools {ct.__version__}"
        self.threads = threads or 1
        try:
            self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        except Exception as exc:  # Core ML reports compile errors with its own exception types
            raise EdgeskinError.about(path, f"Core ML cannot load this package ({str(exc).splitlines()[0]})") from None
        self.input_name = self.package.inputs[0].name
        n = len(self.classes)
        self.inputs = [TensorSpec(self.input_name, (1, 3, 224, 224), "float32")]
        self.outputs = [TensorSpec(name, (1, n), "float32") for name in OUTPUT_ROLES]

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        from PIL import Image

        pixels = np.clip(np.round(array[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
        result = self.model.predict({self.input_name: Image.fromarray(pixels, "RGB")})
        return _in_role_order(result, self.probabilities_name, self.logits_name, self.classes)


def coreml_backend(path: Path, threads: int | None = None, prefer_checker: bool = False):
    """MLModel on macOS (the real Core ML), the checker elsewhere or when asked for."""
    if platform.system() == "Darwin" and not prefer_checker:
        return CoreMLBackend(path, threads)
    return CoreMLCheckerBackend(path, threads)
