"""`edgeskin convert --exits all|2,4,6`: one .tflite per recipe holding every stage of a multi-exit
model as its own signature (runtime/stages.py), weights stored once, so the runtime stops after
any exit without computing deeper blocks (runtime/anytime.py).

litert-torch converts the stages as signatures of one model; ai-edge-quantizer quantizes all of
them at once, calibrated per stage on what the float stages before it give (stage_samples). Trap
(ai-edge-quantizer 0.10.0): a static recipe inserts a dequantize before a float output and makes
its result the graph's output, but leaves the signature pointing at the tensor before it, which
LiteRT never fills ("Tensor data is null" at the first invoke); so the signatures are named and
pointed at their graph's inputs and outputs, by position, after quantization (name_signatures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgeskin.converters.litert_route import quantize
from edgeskin.converters.quiet import log_tail, quiet_output
from edgeskin.models.stages import Stage, StageSpec
from edgeskin.runtime.errors import EdgeskinError

# the default recipes of `convert --exits` per target; every recipe of either target builds
ANYTIME_RECIPES = {"tflite": ("fp32", "fp16", "dynamic", "int8-mixed"), "coreml": ("fp32", "fp16", "w8", "palettize6", "palettize4")}


def export_stages(model, plan: list[StageSpec], example: np.ndarray, log: Path) -> bytes:
    """The float32 anytime .tflite as litert-torch writes it: a signature per stage (inputs args_0,
    outputs output_0.. in the order the stage returns them), NHWC 0..255 pixels into the first."""
    with quiet_output(log):  # its import prints torchao's load failures of CUDA kernels
        import litert_torch

    pixels = torch.from_numpy(example[None].astype(np.float32))
    converter, tokens = None, None
    with torch.no_grad():
        for spec in plan:
            stage = Stage(model, spec).eval()
            if spec.first == 1:
                module, sample = litert_torch.to_channel_last_io(stage, args=[0]).eval(), (pixels,)
                outputs = stage(pixels.permute(0, 3, 1, 2))
            else:
                module, sample = stage, (tokens,)
                outputs = stage(tokens)
            tokens = outputs[0] if not spec.final else None
            converter = (litert_torch.signature if converter is None else converter.signature)(spec.key, module, sample)
    try:
        with quiet_output(log), torch.no_grad():
            return bytes(converter.convert().model_content())
    except EdgeskinError:
        raise
    except Exception as exc:
        raise EdgeskinError(f"litert-torch could not convert the stages: {type(exc).__name__}: {str(exc)[:200]} "
                            f"({log_tail(log)}; log: {log})") from None


def name_signatures(tflite: bytes, plan: list[StageSpec]) -> bytes:
    """Each stage's signature named as runtime/stages.py says and pointed at its graph's own input
    and outputs: output_k is the graph's k-th output (what litert-torch wrote; see the module's trap)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    by_key = {spec.key: spec for spec in plan}
    for signature in model.signatureDefs:
        spec, graph = by_key[signature.signatureKey.decode()], model.subgraphs[signature.subgraphIndex]
        if len(graph.inputs) != 1 or len(graph.outputs) != len(spec.outputs):
            raise EdgeskinError(f"stage {spec.key} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                                f"expected 1 and {len(spec.outputs)}")
        signature.inputs[0].name, signature.inputs[0].tensorIndex = spec.input, int(graph.inputs[0])
        for entry in signature.outputs:
            position = int(entry.name.decode().rsplit("_", 1)[-1])
            entry.name, entry.tensorIndex = spec.outputs[position], int(graph.outputs[position])
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def stage_samples(fp32: bytes, plan: list[StageSpec], pixels: np.ndarray) -> dict:
    """Calibration samples per stage: each image's pixels for the first, and for every later stage
    the tokens the float stages before it give on that image."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=fp32)
    runners = {spec.key: interpreter.get_signature_runner(spec.key) for spec in plan}
    samples: dict = {spec.key: [] for spec in plan}
    for image in pixels:
        value = image[None].astype(np.float32)
        for spec in plan:
            samples[spec.key].append({"args_0": value})
            if not spec.final:
                value = runners[spec.key](args_0=value)["output_0"]
    return samples


def build(fp32: bytes, plan: list[StageSpec], recipe: str, calibration: np.ndarray | None, report, log: Path) -> bytes:
    """One anytime recipe from litert-torch's float32 file, its signatures named last."""
    from edgeskin.converters.litert_route import QUANTIZER_RECIPES

    if recipe == "fp32":
        return name_signatures(fp32, plan)
    samples = stage_samples(fp32, plan, calibration) if QUANTIZER_RECIPES[recipe].needs_calibration else None
    return name_signatures(quantize(fp32, recipe, samples, report, log), plan)
