"""PyTorch -> TFLite through litert-torch, quantized by ai-edge-quantizer: the default TFLite route.

The float32 file takes NHWC float pixels in 0..255, as onnx2tf's did, so the artifact contract
does not depend on the route. Traps handled here (DESIGN.md section 10):
- ai-edge-quantizer's own `calibrate` keeps a moving average of per-image min/max, which clips
  ranges (input scale 0.88 instead of 1.0; static recipes fell to 70-85% agreement): we run its
  Calibrator with a global min/max update instead;
- a recipe's op scope regex is matched against tensor names ending in ";", and one that matches
  nothing quantizes nothing, silently: recipes here select ops by type only, and a test reads
  every file's tensor types back (tests/test_tflite_recipes.py);
- the int16 RSQRT kernel (LayerNorm's 1/sqrt(variance)) is coarse: with it, w8a16 agreed with
  PyTorch on 96.3% of the 1,742 real images (mean |dlogit| 0.032, 3x int8-mixed's); with RSQRT
  kept float, mean |dlogit| fell 12x on 80 test images (0.0198 -> 0.0017) and every top-1 held.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgeskin.converters.quiet import log_tail, quiet_output
from edgeskin.converters.tflite import LINEAR_OPS
from edgeskin.models import deployable
from edgeskin.progress import stage
from edgeskin.runtime.errors import EdgeskinError

CALIBRATION_CHUNK = 16  # images per Calibrator call: progress between calls


@dataclass(frozen=True)
class QuantizerRecipe:
    """How ai-edge-quantizer builds one recipe from the float32 file."""

    mode: str  # "weight_only" (float casting), "dynamic" or "static"
    ops: tuple[str, ...]  # TFLOperationName members the config applies to
    weight_bits: int
    activation_bits: int | None = None  # static only
    float_ops: tuple[str, ...] = ()  # TFLOperationName members kept float inside the recipe (see the traps above)

    @property
    def needs_calibration(self) -> bool:
        return self.mode == "static"


QUANTIZER_RECIPES = {
    "fp16": QuantizerRecipe("weight_only", ("ALL_SUPPORTED",), 16),
    "dynamic": QuantizerRecipe("dynamic", ("ALL_SUPPORTED",), 8),
    # int8 on the linear layers and the patch conv only: the rest stays float, and XNNPACK keeps
    # the graph in one partition (full int8 splits it into 13-64 and runs 7-9x slower)
    "int8-mixed": QuantizerRecipe("static", LINEAR_OPS, 8, 8),
    "int8": QuantizerRecipe("static", ("ALL_SUPPORTED",), 8, 8),
    "w8a16": QuantizerRecipe("static", ("ALL_SUPPORTED",), 8, 16, float_ops=("RSQRT",)),
}


def export_float(model, exit: int | None, example: np.ndarray, log: Path) -> bytes:
    """The float32 .tflite of deployable(model, exit): NHWC float 0..255 in, (probabilities, logits) out.
    `example` is one real uint8 HxWx3 image (litert-torch traces with it)."""
    with quiet_output(log):  # its import prints torchao's load failures of CUDA kernels
        import litert_torch

    wrapper = deployable(model, exit, with_logits=True).eval()
    nhwc = litert_torch.to_channel_last_io(wrapper, args=[0]).eval()
    sample = (torch.from_numpy(example[None].astype(np.float32)),)
    try:
        with quiet_output(log), torch.no_grad():
            return bytes(litert_torch.convert(nhwc, sample).model_content())
    except Exception as exc:  # the converter's errors are many and deep: one line, the log keeps the rest
        raise EdgeskinError(f"litert-torch could not convert the model: {type(exc).__name__}: {str(exc)[:200]} "
                            f"({log_tail(log)}; log: {log})") from None


def _quantizer(fp32: bytes, spec: QuantizerRecipe):
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    qt = quantizer.Quantizer(bytearray(fp32))
    for op in spec.ops:
        name = getattr(qtyping.TFLOperationName, op)
        if spec.mode == "weight_only":
            qt.add_weight_only_config(regex=".*", operation_name=name, num_bits=spec.weight_bits,
                                      algorithm_key=AlgorithmName.FLOAT_CASTING)
        elif spec.mode == "dynamic":
            qt.add_dynamic_config(regex=".*", operation_name=name, num_bits=spec.weight_bits)
        else:
            qt.add_static_config(regex=".*", operation_name=name, activation_num_bits=spec.activation_bits,
                                 weight_num_bits=spec.weight_bits)
    for op in spec.float_ops:  # the latest matching config wins, so this overrides ALL_SUPPORTED for these ops
        qt.update_quantization_recipe(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                                      algorithm_key=AlgorithmName.NO_QUANTIZE)
    return qt


def _signature_input(fp32: bytes) -> tuple[str, str]:
    """(signature key, input name) of the float file's one signature."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=fp32).get_signature_list()
    key, entry = next(iter(signatures.items()))
    return key, entry["inputs"][0]


Samples = dict[str, list[dict[str, np.ndarray]]]  # signature key -> one {input name: array} per image


def pixel_samples(fp32: bytes, pixels: np.ndarray) -> Samples:
    """Calibration samples of a one-signature file: each image as its input."""
    key, name = _signature_input(fp32)
    return {key: [{name: image[None].astype(np.float32)} for image in pixels]}


def calibrate(fp32: bytes, qt, samples: Samples, report, log: Path) -> dict:
    """Activation ranges over every calibration sample of every signature: global min/max, in chunks (progress)."""
    from ai_edge_quantizer import calibrator
    from ai_edge_quantizer.recipe_manager import RecipeManager
    from ai_edge_quantizer.utils import qsv_utils

    recipes = RecipeManager()
    recipes.load_quantization_recipe(qt.get_quantization_recipe())
    with quiet_output(log):
        runner = calibrator.Calibrator(fp32, num_threads=2, qsv_update_func=qsv_utils.min_max_update)
    count = max(len(items) for items in samples.values())
    with stage(report, f"calibrating on {count} images", total=count) as advance:
        for start in range(0, count, CALIBRATION_CHUNK):
            chunk = {key: items[start:start + CALIBRATION_CHUNK] for key, items in samples.items()}
            with quiet_output(log):
                runner.calibrate(chunk, recipes)
            advance(min(CALIBRATION_CHUNK, count - start))
    return runner.get_model_qsvs()


def quantize(fp32: bytes, recipe: str, calibration: np.ndarray | Samples | None, report, log: Path) -> bytes:
    """One recipe of QUANTIZER_RECIPES, built from the float32 file; `calibration` is pixels (a
    one-signature file) or samples per signature (an anytime file: converters/anytime.py)."""
    spec = QUANTIZER_RECIPES[recipe]
    qt = _quantizer(fp32, spec)
    if spec.needs_calibration:
        samples = calibration if isinstance(calibration, dict) else pixel_samples(fp32, calibration)
        qsvs = calibrate(fp32, qt, samples, report, log)
    else:
        qsvs = None
    try:
        with quiet_output(log):
            return bytes(qt.quantize(qsvs, enable_progress_bar=False, enable_progress_report=False).quantized_model)
    except Exception as exc:
        raise EdgeskinError(f"ai-edge-quantizer could not build {recipe}: {type(exc).__name__}: {str(exc)[:200]} "
                            f"(log: {log})") from None
