"""ONNX -> TFLite with onnx2tf and TensorFlow, run inside the onnx2tf environment (`make install-onnx2tf`).

Started by converters/onnx2tf_route.py as `python onnx2tf_worker.py JOB.json`; imports only the
standard library, numpy, Pillow, onnx2tf and TensorFlow, so it runs from its file without
edgeskin installed there. Its output goes to the route's log. Traps (DESIGN.md section 10):
onnx2tf downloads a sample .npy for every NHWC-image model unless one sits in its working
directory (we write it, from real images); it runs onnxsim as a subprocess (the environment's bin
folder must be on PATH); GELU's Erf is replaced by a pseudo op so no FlexErf appears.

Job keys: task ("float" or "int8"), onnx, workdir, pixels (.npy, uint8 NxHxWx3), dynamic (bool);
int8: saved_model, keep_float_ops (list; empty: full int8 with int8 input and output), output (.tflite path). The result (file paths and
library versions) is written to workdir/result-<task>.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
FLOAT_FILES = {"fp32": "model_float32.tflite", "fp16": "model_float16.tflite", "dynamic": "model_dynamic_range_quant.tflite"}


def onnx2tf_sample(pixels: np.ndarray) -> np.ndarray:
    """20x128x128x3 float32 in [0, 1] from real images: what onnx2tf would otherwise download."""
    from PIL import Image

    picks = [pixels[i % len(pixels)] for i in range(20)]
    small = [np.asarray(Image.fromarray(p).resize((128, 128), Image.BILINEAR), dtype=np.float32) / 255 for p in picks]
    return np.stack(small).astype(np.float32)


def convert_float(job: dict) -> dict:
    """float32, float16 and (on request) dynamic-range files, plus the SavedModel int8 starts from."""
    import onnx2tf

    workdir = Path(job["workdir"]).resolve()
    np.save(workdir / ONNX2TF_SAMPLE, onnx2tf_sample(np.load(job["pixels"])))
    out = workdir / "onnx2tf"
    os.chdir(workdir)  # onnx2tf looks for its sample in the working directory
    onnx2tf.convert(input_onnx_file_path=str(Path(job["onnx"]).resolve()), output_folder_path=str(out),
                    output_signaturedefs=True, output_dynamic_range_quantized_tflite=job["dynamic"],
                    replace_to_pseudo_operators=["erf"], non_verbose=True)
    files = {}
    for recipe in ("fp32", "fp16") + (("dynamic",) if job["dynamic"] else ()):
        produced = out / FLOAT_FILES[recipe].replace("model", Path(job["onnx"]).stem)
        if not produced.is_file():
            raise SystemExit(f"error: onnx2tf wrote no {recipe} model")
        files[recipe] = str(produced)
    return {"files": files, "saved_model": str(out)}


def quantize_int8(job: dict) -> dict:
    """Calibrated int8 from the SavedModel onnx2tf wrote; the ops in keep_float_ops stay float (mixed)."""
    import tensorflow as tf
    from tensorflow.lite.tools.optimize.debugging.python import debugger

    calibration = np.load(job["pixels"])

    def dataset():
        for pixels in calibration:
            yield [pixels[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(job["saved_model"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    keep = job.get("keep_float_ops") or []
    if keep:
        options = debugger.QuantizationDebugOptions(denylisted_ops=keep)
        raw = debugger.QuantizationDebugger(converter=converter, debug_dataset=dataset,
                                            debug_options=options).get_nondebug_quantized_model()
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        raw = converter.convert()
    Path(job["output"]).write_bytes(raw)
    return {}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("onnx2tf", "tensorflow", "onnx", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def die_with_parent() -> None:
    """Linux kills this worker when edgeskin exits (Ctrl-C and SIGTERM end edgeskin with os._exit; an
    orphaned onnx2tf would run on for minutes into a deleted folder)."""
    import ctypes
    import signal

    parent = os.getppid()
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent:  # edgeskin was gone before the line above
        sys.exit(1)


def main() -> int:
    die_with_parent()
    job = json.loads(Path(sys.argv[1]).read_text())
    result = (convert_float if job["task"] == "float" else quantize_int8)(job)
    result["versions"] = versions()
    Path(job["workdir"], f"result-{job['task']}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
