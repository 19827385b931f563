"""ONNX -> TFLite through onnx2tf, offline, plus TensorFlow's calibrated int8 quantizers.

Traps handled here (DESIGN.md section 10): onnx2tf downloads a sample .npy from the internet
for every NHWC-image model unless one sits in its working directory (we write it, from real
images); it runs onnxsim as a subprocess, so the environment's bin folder goes on PATH; Erf
(GELU) is replaced by a pseudo op so no FlexErf appears; its errors call sys.exit.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeskin.converters.artifacts import bytes_embedder
from edgeskin.converters.quiet import log_tail, quiet_output
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.metadata import METADATA_NAME, OUTPUT_ROLES, ArtifactMetadata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter is not for users

ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
FLOAT_FILES = {"fp32": "model_float32.tflite", "fp16": "model_float16.tflite", "dynamic": "model_dynamic_range_quant.tflite"}


@dataclass(frozen=True)
class Onnx2TfOutput:
    folder: Path  # holds the SavedModel and the float/dynamic .tflite files

    def tflite(self, recipe: str) -> Path:
        return self.folder / FLOAT_FILES[recipe]


def _onnx2tf_sample(pixels: np.ndarray) -> np.ndarray:
    """20x128x128x3 float32 in [0, 1] from real images: what onnx2tf would otherwise download."""
    from PIL import Image

    picks = [pixels[i % len(pixels)] for i in range(20)]
    small = [np.asarray(Image.fromarray(p).resize((128, 128), Image.BILINEAR), dtype=np.float32) / 255 for p in picks]
    return np.stack(small).astype(np.float32)


@contextlib.contextmanager
def _in_folder(folder: Path):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_onnx2tf(onnx_path: Path, workdir: Path, sample_pixels: np.ndarray, dynamic: bool) -> Onnx2TfOutput:
    """Convert with onnx2tf in `workdir`; float32 and float16 files always, dynamic-range on request."""
    workdir, onnx_path = workdir.resolve(), onnx_path.resolve()  # we chdir into workdir below
    workdir.mkdir(parents=True, exist_ok=True)
    np.save(workdir / ONNX2TF_SAMPLE, _onnx2tf_sample(sample_pixels))
    out = workdir / "onnx2tf"
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    log = workdir / "onnx2tf.log"
    try:
        with _in_folder(workdir), quiet_output(log):
            import onnx2tf  # imports TensorFlow, whose start-up messages belong in the log

            onnx2tf.convert(
                input_onnx_file_path=str(onnx_path),
                output_folder_path=str(out),
                output_signaturedefs=True,
                output_dynamic_range_quantized_tflite=dynamic,
                replace_to_pseudo_operators=["erf"],
                non_verbose=True,
            )
    except SystemExit:
        raise EdgeskinError.about(onnx_path, f"onnx2tf failed: {log_tail(log)} (log: {log})") from None
    for recipe in ("fp32", "fp16") + (("dynamic",) if dynamic else ()):
        produced = out / FLOAT_FILES[recipe].replace("model", onnx_path.stem)
        if not produced.is_file():
            raise EdgeskinError.about(onnx_path, f"onnx2tf wrote no {recipe} model: {log_tail(log)} (log: {log})")
        produced.rename(out / FLOAT_FILES[recipe])
    return Onnx2TfOutput(out)


def quantize_int8(saved_model: Path, calibration: np.ndarray, keep_float_ops: tuple[str, ...] = (),
                  keep_float_nodes: tuple[str, ...] = (), integer_io: bool = True, log: Path | None = None) -> bytes:
    """Calibrated int8 from the SavedModel onnx2tf wrote; ops/nodes listed stay float (mixed)."""
    with quiet_output(log or Path(os.devnull)):
        import tensorflow as tf
        from tensorflow.lite.tools.optimize.debugging.python import debugger

    def dataset():
        for pixels in calibration:
            yield [pixels[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    mixed = bool(keep_float_ops or keep_float_nodes)
    if not mixed:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if integer_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with quiet_output(log or Path(os.devnull)):
        if not mixed:
            return converter.convert()
        options = debugger.QuantizationDebugOptions(denylisted_ops=list(keep_float_ops) or None,
                                                    denylisted_nodes=list(keep_float_nodes) or None)
        return debugger.QuantizationDebugger(converter=converter, debug_dataset=dataset, debug_options=options).get_nondebug_quantized_model()


def op_types(tflite: bytes) -> set[str]:
    """Builtin op names used by a .tflite model (read from the flatbuffer, no interpreter)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    return {flatbuffer_utils.opcode_to_name(model, i) for i in range(len(model.operatorCodes))}


def declare_outputs(tflite: bytes, found: list[str]) -> bytes:
    """Put the outputs in the contract's order (OUTPUT_ROLES) and name them so, in the graph's
    output list, the tensors and every signature. `found`: the role of each output as converted
    (onnx2tf keeps or drops the ONNX names and order depending on the recipe)."""
    from ai_edge_litert.tools import flatbuffer_utils

    if sorted(found) != sorted(OUTPUT_ROLES):
        raise EdgeskinError(f"converted model's outputs are {found}, expected {', '.join(OUTPUT_ROLES)}")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    graph = model.subgraphs[0]
    role_of = {int(tensor): role for tensor, role in zip(graph.outputs, found, strict=True)}
    graph.outputs = [next(t for t, r in role_of.items() if r == role) for role in OUTPUT_ROLES]
    for tensor, role in role_of.items():
        graph.tensors[tensor].name = role
    if not model.signatureDefs:  # onnx2tf's dynamic-range file has none: give it the others' signature
        model.signatureDefs = [_signature(graph, role_of)]
    for signature in model.signatureDefs:
        signature.outputs = sorted(signature.outputs, key=lambda entry: OUTPUT_ROLES.index(role_of[entry.tensorIndex]))
        for entry in signature.outputs:
            entry.name = role_of[entry.tensorIndex]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _signature(graph, role_of: dict[int, str]):
    """A `serving_default` signature: input `pixels`, outputs by role (what onnx2tf writes elsewhere)."""
    from ai_edge_litert import schema_py_generated as schema

    def tensor_map(name: str, index: int):
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, index
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = [tensor_map("pixels", int(graph.inputs[0]))]
    signature.outputs = [tensor_map(role, tensor) for tensor, role in role_of.items()]
    return signature


def embed_metadata(tflite: bytes, metadata: ArtifactMetadata) -> bytes:
    """Add (or replace) the "edgeskin" metadata entry; the model itself is untouched."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != METADATA_NAME] if model.metadata else []
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata.to_json().encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


embed_metadata_file = bytes_embedder(embed_metadata)  # the format table's embed column (runtime/formats.py)
