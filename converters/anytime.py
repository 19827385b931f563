"""`edgeskin convert --exits all|2,4,6`: one .tflite per recipe holding every stage of a multi-exit
model as its own signature (runtime/stages.py), weights stored once, so the runtime stops after
any exit without computing deeper blocks (runtime/anytime.py).

litert-torch converts the stages as signatures of one model; ai-edge-quantizer quantizes all of
them at once. Measured with ai-edge-quantizer 0.10.0: fp16 and dynamic work on such a file, but a
statically quantized one (int8-mixed, int8, w8a16) loads and then fails at its first invoke
("Tensor data is null"), so the anytime recipes are fp32, fp16 and dynamic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgeskin.converters.litert_route import quantize
from edgeskin.converters.quiet import log_tail, quiet_output
from edgeskin.models.stages import Stage, StageSpec
from edgeskin.runtime.errors import EdgeskinError

ANYTIME_RECIPES = ("fp32", "fp16", "dynamic")


def check_recipes(recipes: list[str]) -> None:
    unsupported = [r for r in recipes if r not in ANYTIME_RECIPES]
    if unsupported:
        raise EdgeskinError(f"--exits: recipe {unsupported[0]} cannot be built as an anytime file; use "
                            f"{', '.join(ANYTIME_RECIPES)} (ai-edge-quantizer 0.10's static recipes break multi-signature files)")


def export_stages(model, plan: list[StageSpec], example: np.ndarray, log: Path) -> bytes:
    """The float32 anytime .tflite: a signature per stage, NHWC 0..255 pixels into the first."""
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
            return name_signatures(bytes(converter.convert().model_content()), plan)
    except EdgeskinError:
        raise
    except Exception as exc:
        raise EdgeskinError(f"litert-torch could not convert the stages: {type(exc).__name__}: {str(exc)[:200]} "
                            f"({log_tail(log)}; log: {log})") from None


def name_signatures(tflite: bytes, plan: list[StageSpec]) -> bytes:
    """Each stage's signature names its input and outputs as runtime/stages.py says (litert-torch
    writes args_0 and output_0.. in the order the module returns them)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    by_key = {spec.key: spec for spec in plan}
    for signature in model.signatureDefs:
        spec = by_key[signature.signatureKey.decode()]
        if len(signature.inputs) != 1 or len(signature.outputs) != len(spec.outputs):
            raise EdgeskinError(f"litert-torch wrote stage {spec.key} with {len(signature.inputs)} inputs and "
                                f"{len(signature.outputs)} outputs; expected 1 and {len(spec.outputs)}")
        signature.inputs[0].name = spec.input
        for entry, role in zip(sorted(signature.outputs, key=lambda e: _index(e.name)), spec.outputs, strict=True):
            entry.name = role
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _index(name: bytes) -> int:
    return int(name.decode().rsplit("_", 1)[-1])


def build(fp32: bytes, recipe: str, report, log: Path) -> bytes:
    """One anytime recipe from the float32 file (the quantizer keeps the signatures and their names)."""
    return fp32 if recipe == "fp32" else quantize(fp32, recipe, None, report, log)
