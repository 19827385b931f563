"""Quantization recipes and their parity gates: data in one place, read by convert and parity.

Each recipe is labelled honestly (file names and metadata carry the name below). A gate is what
an artifact must achieve against the PyTorch reference on real images before it ships.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeskin.runtime.errors import EdgeskinError


@dataclass(frozen=True)
class Gate:
    min_agreement: float  # top-1 agreement with the reference, 0..1
    max_logit_diff_rel: float | None = None  # max |logit diff| / reference logit range
    min_cosine: float | None = None  # cosine of logit vectors, mean over images
    max_bma_loss: float | None = None  # reference BMA - artifact BMA, in BMA units (0.01 = 1 point)


@dataclass(frozen=True)
class Recipe:
    name: str
    targets: tuple[str, ...]
    description: str
    gate: Gate
    needs_calibration: bool = False


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("fp32", ("tflite", "onnx", "coreml"), "float32 weights and activations",
               Gate(min_agreement=1.0, max_logit_diff_rel=1e-3)),
        Recipe("fp16", ("tflite", "coreml"), "float16 weights (TFLite: float32 compute where the runtime chooses; "
               "Core ML: float16 compute)", Gate(min_agreement=0.995)),
        Recipe("dynamic", ("tflite",), "int8 weights, float activations (dynamic-range quantization)",
               Gate(min_agreement=0.98, min_cosine=0.999)),
        Recipe("int8", ("tflite",), "full integer: int8 weights and activations, int8 input and output, calibrated "
               "(measured 93% top-1 agreement on the demo student: fails its gate; built only when asked for)",
               Gate(min_agreement=0.97, max_bma_loss=0.01), needs_calibration=True),
        Recipe("int8-mixed", ("tflite",), "calibrated int8 weights and activations for every linear layer and the patch "
               "convolution; LayerNorm, Softmax, GELU, attention matmuls and residual adds kept float",
               Gate(min_agreement=0.97, max_bma_loss=0.01), needs_calibration=True),
        Recipe("w8", ("coreml",), "int8 linear per-channel weights, decompressed on load; float16 compute",
               Gate(min_agreement=0.98)),
        Recipe("palettize6", ("coreml",), "6-bit k-means palettized weights (64-entry palette per tensor); float16 compute",
               Gate(min_agreement=0.97, max_bma_loss=0.01)),
        Recipe("palettize4", ("coreml",), "4-bit k-means palettized weights (16-entry palette per tensor); float16 compute; "
               "lossy by design (measured 98.5% agreement, BMA loss 0.0001 on the demo student's test split)",
               Gate(min_agreement=0.95, max_bma_loss=0.02)),
    )
}


TARGETS = ("tflite", "onnx", "coreml")
DEFAULT_RECIPES = {"tflite": "fp32,fp16,dynamic,int8-mixed", "onnx": "fp32", "coreml": "fp32,fp16,w8,palettize6,palettize4"}


def recipes_for(target: str, text: str | None) -> dict[str, list[Recipe]]:
    """--target / --recipes -> the recipes to build per target.

    With --target all each target builds the listed recipes it supports; a recipe that no
    chosen target supports, or an unknown name, is an error.
    """
    if target not in (*TARGETS, "all"):
        raise EdgeskinError(f"--target {target}: expected one of {', '.join(TARGETS)}, all")
    targets = TARGETS if target == "all" else (target,)
    chosen: dict[str, list[Recipe]] = {}
    for t in targets:
        names = [n.strip() for n in (text if text is not None else DEFAULT_RECIPES[t]).split(",") if n.strip()]
        if not names:
            raise EdgeskinError("--recipes: empty list")
        for name in names:
            if name not in RECIPES:
                raise EdgeskinError(f"--recipes: unknown recipe '{name}' (known: {', '.join(RECIPES)})")
            if not any(u in RECIPES[name].targets for u in targets):
                raise EdgeskinError(f"--recipes: '{name}' is not available for {target} (it is for {', '.join(RECIPES[name].targets)})")
        mine = [RECIPES[n] for n in names if t in RECIPES[n].targets]
        if mine:
            chosen[t] = mine
    return chosen
