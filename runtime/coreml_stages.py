"""A Core ML anytime package (a function per stage) behind the signature interface of an anytime
.tflite, so runtime/anytime.py runs either the same way: signatures() and run_signature(key, inputs)
with the stage names of runtime/stages.py; Core ML's own names (COREML_NAMES) stay in here.

The pixels go in as NHWC floats like a .tflite stage's and are laid out NCHW for the package.
On macOS each function is an MLModel loaded with its function_name (Core ML itself); elsewhere,
or when asked for, edgeskin's numpy checker runs each function's program (runtime/coreml.py).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from .backends import TensorSpec
from .coreml import CHECKER_LABEL, MACOS_LABEL, MilExecutor
from .errors import EdgeskinError
from .mlpackage import CoreMLPackage, read_functions
from .stages import COREML_NAMES

_EDGESKIN_NAMES = {coreml: ours for ours, coreml in COREML_NAMES.items()}


def _spec(name: str, info) -> TensorSpec:
    if info.shape is None:
        raise EdgeskinError(f"{name} has no static shape")
    return TensorSpec(name, tuple(info.shape), "float32")


class CoreMLStagesBackend:
    """Runs a multifunction package's stages; latency from the checker says nothing about a phone."""

    def __init__(self, path: Path, functions: tuple[str, ...], threads: int | None = None, prefer_checker: bool = False) -> None:
        self.path, self.threads = path, threads or 1
        self.packages = read_functions(path, list(functions))
        self._signatures = {name: self._described(package) for name, package in self.packages.items()}
        first = next(iter(self.packages.values()))
        (image, info), = first.program.inputs.items()
        self.inputs = [TensorSpec(image, tuple(info.shape or ()), "float32")]  # the package's own NCHW image input
        if platform.system() == "Darwin" and not prefer_checker:
            import coremltools as ct

            self.runtime, self.runtime_version = MACOS_LABEL, f"coremltools {ct.__version__}"
            self._runners = {name: self._mlmodel(ct, name) for name in functions}
        else:
            self.runtime, self.runtime_version = CHECKER_LABEL, f"(numpy {np.__version__})"
            self._runners = {name: MilExecutor(package).run for name, package in self.packages.items()}

    def _described(self, package: CoreMLPackage) -> dict[str, dict[str, TensorSpec]]:
        types = package.program.types()
        try:
            inputs = {_EDGESKIN_NAMES.get(n, n): _spec(n, info) for n, info in package.program.inputs.items()}
            outputs = {_EDGESKIN_NAMES.get(n, n): _spec(n, types[n]) for n in package.program.outputs}
        except (EdgeskinError, KeyError) as exc:
            raise EdgeskinError.about(self.path, f"function {package.function}: {exc}") from None
        if "pixels" in inputs:  # fed like a .tflite stage's pixels: NHWC
            n, c, h, w = inputs["pixels"].shape
            inputs["pixels"] = TensorSpec(inputs["pixels"].name, (n, h, w, c), "float32")
        return {"inputs": inputs, "outputs": outputs}

    def _mlmodel(self, ct, function: str):
        try:
            model = ct.models.MLModel(str(self.path), compute_units=ct.ComputeUnit.CPU_ONLY, function_name=function)
        except Exception as exc:  # Core ML reports compile errors with its own exception types
            raise EdgeskinError.about(self.path, f"Core ML cannot load function {function} ({str(exc).splitlines()[0]})") from None

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            from PIL import Image

            image = COREML_NAMES["pixels"]
            if image in feeds:
                pixels = np.clip(np.round(feeds[image][0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
                feeds = {**feeds, image: Image.fromarray(pixels, "RGB")}
            return model.predict(feeds)

        return run

    def signatures(self) -> dict[str, dict[str, dict[str, TensorSpec]]]:
        """function (stage key) -> {"inputs": name -> spec, "outputs": name -> spec}, in runtime/stages.py's names."""
        return self._signatures

    def run_signature(self, key: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {name: np.asarray(value, np.float32) for name, value in inputs.items() if name != "pixels"}
        if "pixels" in inputs:
            feeds[COREML_NAMES["pixels"]] = np.asarray(inputs["pixels"], np.float32).transpose(0, 3, 1, 2)
        result = self._runners[key](feeds)
        return {_EDGESKIN_NAMES.get(n, n): np.asarray(result[n], np.float32) for n in self.packages[key].program.outputs}

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        raise EdgeskinError.about(self.path, "is an anytime package: run it stage by stage (edgeskin.load gives an AnytimePredictor)")
