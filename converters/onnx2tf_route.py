"""The second, independent TFLite route: ONNX -> onnx2tf, in onnx2tf's own environment.

onnx2tf 1.29.24 (the last release for Python 3.11) pins numpy 1, TensorFlow 2.19 and protobuf 4,
which cannot share an environment with litert-torch (numpy 2, protobuf 7). edgeskin exports the
ONNX here and runs converters/onnx2tf_worker.py there as a subprocess; the artifacts then get the
same labelling, gates and manifest as the default route's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeskin.converters.worker_env import WorkerEnvironment
from edgeskin.progress import stage

ONNX2TF = WorkerEnvironment("EDGESKIN_ONNX2TF_PYTHON", ".venv-onnx2tf", "--route onnx2tf", "install-onnx2tf",
                            "onnx2tf 1.29.24 (constraints-onnx2tf.txt)")
WORKER = Path(__file__).resolve().with_name("onnx2tf_worker.py")
onnx2tf_python = ONNX2TF.python  # checked before any work (edgeskin.api)


@dataclass(frozen=True)
class Onnx2TfResult:
    files: dict[str, bytes]  # recipe -> the .tflite onnx2tf/TensorFlow wrote
    seconds: dict[str, float]  # recipe -> conversion seconds (fp32, fp16, dynamic share one run)
    versions: dict[str, str]  # onnx2tf, tensorflow, ... in that environment


def _run(job: dict, label: str, report) -> dict:
    """One worker run, its output in workdir/onnx2tf.log; a failure is one line with the log's last error."""
    workdir = Path(job["workdir"])
    job_file = workdir / f"job-{job['task']}-{job.get('recipe', 'float')}.json"
    job_file.write_text(json.dumps(job))
    with stage(report, label):
        ONNX2TF.run(WORKER, job_file, workdir / "onnx2tf.log", f"onnx2tf route ({label})", {"TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads((workdir / f"result-{job['task']}.json").read_text())


def convert(onnx: bytes, recipes: list[str], pixels: np.ndarray, calibration: np.ndarray | None, workdir: Path,
            report) -> Onnx2TfResult:
    """Every recipe onnx2tf builds: fp32/fp16/dynamic from one onnx2tf run, int8 and int8-mixed
    calibrated by TensorFlow from its SavedModel (int8-mixed: every op but the linear ones float).
    Quantized files' seconds include the float run they start from."""
    from edgeskin.converters.tflite import LINEAR_OPS, op_types

    onnx2tf_python()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "model.onnx").write_bytes(onnx)
    np.save(workdir / "pixels.npy", pixels)
    began = time.perf_counter()
    floats = _run({"task": "float", "onnx": str(workdir / "model.onnx"), "workdir": str(workdir),
                    "pixels": str(workdir / "pixels.npy"), "dynamic": "dynamic" in recipes},
                   "onnx2tf: converting (float32, float16" + (", dynamic-range" if "dynamic" in recipes else "") + ")", report)
    float_seconds = time.perf_counter() - began
    files = {r: Path(floats["files"][r]).read_bytes() for r in recipes if r in floats["files"]}
    seconds = dict.fromkeys(files, float_seconds)
    keep_float_ops = sorted(op_types(Path(floats["files"]["fp32"]).read_bytes()) - set(LINEAR_OPS))
    calibrated = [r for r in recipes if r in ("int8", "int8-mixed")]
    if calibrated:
        np.save(workdir / "calibration.npy", calibration)
    for recipe in calibrated:
        began = time.perf_counter()
        job = {"task": "int8", "recipe": recipe, "workdir": str(workdir), "saved_model": floats["saved_model"],
               "pixels": str(workdir / "calibration.npy"), "output": str(workdir / f"{recipe}.tflite"),
               "keep_float_ops": keep_float_ops if recipe == "int8-mixed" else []}
        _run(job, f"{recipe}: TensorFlow calibrating on {len(calibration)} images", report)
        files[recipe] = Path(job["output"]).read_bytes()
        seconds[recipe] = float_seconds + time.perf_counter() - began
    return Onnx2TfResult(files, seconds, floats["versions"])
