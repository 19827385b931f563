"""The second, independent TFLite route: ONNX -> onnx2tf, in onnx2tf's own environment.

onnx2tf 1.29.24 (the last release for Python 3.11) pins numpy 1, TensorFlow 2.19 and protobuf 4,
which cannot share an environment with litert-torch (numpy 2, protobuf 7). edgeskin exports the
ONNX here and runs converters/onnx2tf_worker.py there as a subprocess; the artifacts then get the
same labelling, gates and manifest as the default route's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeskin.converters.progress import stage
from edgeskin.converters.quiet import log_tail
from edgeskin.runtime.errors import EdgeskinError

ENV_VARIABLE = "EDGESKIN_ONNX2TF_PYTHON"
DEFAULT_ENV = Path(__file__).resolve().parents[1] / ".venv-onnx2tf"  # `make install-onnx2tf` in a checkout
WORKER = Path(__file__).resolve().with_name("onnx2tf_worker.py")


@dataclass(frozen=True)
class Onnx2TfResult:
    files: dict[str, bytes]  # recipe -> the .tflite onnx2tf/TensorFlow wrote
    seconds: dict[str, float]  # recipe -> conversion seconds (fp32, fp16, dynamic share one run)
    versions: dict[str, str]  # onnx2tf, tensorflow, ... in that environment


def onnx2tf_python() -> Path:
    """The onnx2tf environment's Python, or one line saying how to get one."""
    given = os.environ.get(ENV_VARIABLE)
    python = Path(given) if given else DEFAULT_ENV / "bin" / "python"
    if not python.is_file():
        where = f"{ENV_VARIABLE}={given} does not exist" if given else f"no onnx2tf environment at {DEFAULT_ENV}"
        raise EdgeskinError(f"--route onnx2tf: {where}; build it with `make install-onnx2tf` in an edgeskin checkout, "
                            f"or point {ENV_VARIABLE} at a Python with onnx2tf 1.29.24 (constraints-onnx2tf.txt)")
    return python


def _run(python: Path, job: dict, label: str, report) -> dict:
    """One worker run, its output in workdir/onnx2tf.log; a failure is one line with the log's last error."""
    workdir = Path(job["workdir"])
    job_file = workdir / f"job-{job['task']}-{job.get('recipe', 'float')}.json"
    job_file.write_text(json.dumps(job))
    log = workdir / "onnx2tf.log"
    env = dict(os.environ, PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}", TF_CPP_MIN_LOG_LEVEL="3")
    with stage(report, label), open(log, "ab") as out:
        # -I: the script's folder (converters/, whose onnx.py would shadow the onnx package) stays off sys.path
        done = subprocess.run([str(python), "-I", str(WORKER), str(job_file)], stdout=out, stderr=subprocess.STDOUT, env=env,
                              cwd=workdir)
    if done.returncode != 0:
        raise EdgeskinError(f"onnx2tf route failed ({label}): {log_tail(log)} (log: {log})")
    return json.loads((workdir / f"result-{job['task']}.json").read_text())


def convert(onnx: bytes, recipes: list[str], pixels: np.ndarray, calibration: np.ndarray | None, workdir: Path,
            report) -> Onnx2TfResult:
    """Every recipe onnx2tf builds: fp32/fp16/dynamic from one onnx2tf run, int8 and int8-mixed
    calibrated by TensorFlow from its SavedModel (int8-mixed: every op but the linear ones float).
    Quantized files' seconds include the float run they start from."""
    from edgeskin.converters.tflite import LINEAR_OPS, op_types

    python = onnx2tf_python()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "model.onnx").write_bytes(onnx)
    np.save(workdir / "pixels.npy", pixels)
    began = time.perf_counter()
    floats = _run(python, {"task": "float", "onnx": str(workdir / "model.onnx"), "workdir": str(workdir),
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
        _run(python, job, f"{recipe}: TensorFlow calibrating on {len(calibration)} images", report)
        files[recipe] = Path(job["output"]).read_bytes()
        seconds[recipe] = float_seconds + time.perf_counter() - began
    return Onnx2TfResult(files, seconds, floats["versions"])
