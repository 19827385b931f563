"""Model runtimes behind one small interface: run(input array) -> output arrays in metadata order.

Runtimes are imported lazily, inside the loader that needs them, so importing edgeskin.runtime
stays cheap and needs none of them. For .tflite the order is ai-edge-litert, then
tflite-runtime, then TensorFlow's own tf.lite (DESIGN.md section 7).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EdgeskinError

# What ai-edge-litert 2.3's C++ prints on every load, whatever TF_CPP_MIN_LOG_LEVEL says: not for users
_LOAD_NOTICES = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
# Text the TFLite runtimes use when a model needs ops newer than they have
_TOO_NEW = ("Didn't find op for builtin opcode", "old TFLite binary", "builtin_code out of range")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0  # 0 = not quantized
    zero_point: int = 0


def default_threads() -> int:
    """All cores (TFLite's own default is 1)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def tflite_interpreter_class():
    """(Interpreter class, runtime name, version): ai-edge-litert, else tflite-runtime, else tf.lite."""
    for module, name in (("ai_edge_litert.interpreter", "ai-edge-litert"), ("tflite_runtime.interpreter", "tflite-runtime")):
        try:
            found = importlib.import_module(module)
            package = importlib.import_module(module.split(".")[0])
            return found.Interpreter, name, getattr(package, "__version__", "unknown")
        except ImportError:
            continue
    try:  # last resort on a development machine; never needed on a device
        tf = importlib.import_module("tensorflow")
        return tf.lite.Interpreter, "tensorflow.lite", tf.__version__
    except ImportError:
        raise EdgeskinError("no TFLite runtime installed: pip install 'edgeskin[pi]' (ai-edge-litert)") from None


@contextlib.contextmanager
def _native_notices_dropped():
    """Run a native call with its stderr (fd 2) captured; everything but _LOAD_NOTICES is passed on."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr to protect
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines() if line.strip() not in _LOAD_NOTICES]
            if kept:
                print("\n".join(kept), file=sys.stderr)


class TFLiteBackend:
    def __init__(self, path: Path, threads: int | None = None) -> None:
        interpreter_class, self.runtime, self.runtime_version = tflite_interpreter_class()
        self.threads = threads or default_threads()
        try:
            with _native_notices_dropped():
                self.interpreter = interpreter_class(model_path=str(path), num_threads=self.threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if any(marker in str(exc) for marker in _TOO_NEW):
                raise EdgeskinError.about(path, f"needs a newer TFLite runtime than {self.runtime} {self.runtime_version} ({text}); "
                                          "install ai-edge-litert, or convert with a recipe this runtime supports") from None
            if "Flex" in str(exc) or "Select TensorFlow op" in str(exc):
                raise EdgeskinError.about(path, f"uses TensorFlow (Flex) ops that no device runtime has ({text})") from None
            raise EdgeskinError.about(path, f"{self.runtime} cannot load this model ({text})") from None
        self.inputs = [self._spec(d) for d in self.interpreter.get_input_details()]
        self.outputs = [self._spec(d) for d in self.interpreter.get_output_details()]
        # one interpreter holds one set of tensors: calls from several threads take turns (without
        # this, set_tensor fails while another thread's invoke runs: "There is at least 1 reference
        # to internal data")
        self._lock = threading.Lock()
        self._runners: dict = {}  # signature key -> its runner, made on first use

    @staticmethod
    def _spec(detail: dict) -> TensorSpec:
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return TensorSpec(detail["name"], tuple(int(x) for x in detail["shape"]), np.dtype(detail["dtype"]).name, float(scale), int(zero_point))

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            details = self.interpreter.get_input_details()[0]
            self.interpreter.set_tensor(details["index"], array)
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(d["index"]).copy() for d in self.interpreter.get_output_details()]

    def signatures(self) -> dict[str, dict[str, dict[str, TensorSpec]]]:
        """signature key -> {"inputs": name -> spec, "outputs": name -> spec} (an anytime file has one per stage)."""
        found = {}
        for key in self.interpreter.get_signature_list():
            runner = self.interpreter.get_signature_runner(key)
            found[key] = {side: {name: self._spec(detail) for name, detail in details.items()}
                          for side, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details()))}
        return found

    def run_signature(self, key: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One signature (a stage of an anytime file) on named inputs -> named outputs (copies)."""
        with self._lock:
            if key not in self._runners:
                self._runners[key] = self.interpreter.get_signature_runner(key)
            return {name: value.copy() for name, value in self._runners[key](**inputs).items()}


class OnnxBackend:
    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            ort = importlib.import_module("onnxruntime")
        except ImportError:
            raise EdgeskinError.about(path, "onnxruntime is not installed (pip install onnxruntime)") from None
        self.runtime, self.runtime_version = "onnxruntime", ort.__version__
        self.threads = threads or default_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise EdgeskinError.about(path, f"onnxruntime cannot load this model ({str(exc).splitlines()[0]})") from None
        dtype = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}
        self.inputs = [TensorSpec(i.name, tuple(i.shape), dtype.get(i.type, i.type)) for i in self.session.get_inputs()]
        self.outputs = [TensorSpec(o.name, tuple(o.shape), dtype.get(o.type, o.type)) for o in self.session.get_outputs()]

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.inputs[0].name: array})
