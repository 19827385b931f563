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
class TensorTypes:
    """What a TFLite recipe leaves in the file, checked against the file's own tensors
    (converters.tflite.tensor_types, tests/test_tflite_recipes.py)."""

    linear_weights: str  # weights of FULLY_CONNECTED and CONV_2D
    linear_activations: str  # inputs of FULLY_CONNECTED and CONV_2D
    other_activations: str  # inputs of LayerNorm (MEAN), Softmax, GELU
    io: str  # the graph's input and outputs

    def describe(self) -> str:
        linear = (f"{self.linear_weights} weights" if self.linear_weights == self.linear_activations
                  else f"{self.linear_weights} weights, {self.linear_activations} activations")
        return (f"linear layers and patch conv: {linear}; LayerNorm, Softmax, GELU: {self.other_activations}; "
                f"input and outputs: {self.io}")


@dataclass(frozen=True)
class Recipe:
    name: str
    targets: tuple[str, ...]
    summary: str
    gate: Gate
    needs_calibration: bool = False
    tflite: TensorTypes | None = None  # None: not a TFLite recipe
    routes: tuple[str, ...] = ()  # the TFLite routes that build it (ROUTES)
    compute: str = "fp32"  # what a CPU runtime's matmuls run in (TFLite, ONNX): the peak bench compares with

    @property
    def description(self) -> str:
        """The summary, then (TFLite) what is int8, int16 and float in the file."""
        return f"{self.summary} [TFLite {self.tflite.describe()}]" if self.tflite else self.summary


# TFLite routes: litert-torch (+ ai-edge-quantizer) in this environment, the default; onnx2tf in
# its own (converters/onnx2tf_route.py). The parity gates are the same on both.
ROUTES = ("litert", "onnx2tf")
DEFAULT_ROUTE = "litert"
ROUTE_LABELS = {"litert": "litert-torch", "onnx2tf": "onnx2tf"}

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("fp32", ("tflite", "onnx", "coreml"), "float32 weights and activations",
               Gate(min_agreement=1.0, max_logit_diff_rel=1e-3),
               tflite=TensorTypes("float32", "float32", "float32", "float32"), routes=ROUTES),
        Recipe("fp16", ("tflite", "coreml"), "float16 weights (TFLite: dequantized to float32 at load, float32 compute; "
               "Core ML: float16 compute)", Gate(min_agreement=0.995),
               tflite=TensorTypes("float16", "float32", "float32", "float32"), routes=ROUTES),
        Recipe("dynamic", ("tflite",), "int8 per-channel weights, float activations (dynamic-range quantization)",
               Gate(min_agreement=0.98, min_cosine=0.999),
               tflite=TensorTypes("int8", "float32", "float32", "float32"), routes=ROUTES, compute="int8"),
        Recipe("int8-mixed", ("tflite",), "calibrated int8 weights and activations for every linear layer and the patch "
               "convolution (global min/max over real images); LayerNorm, Softmax, GELU, attention matmuls and residual "
               "adds kept float, which keeps XNNPACK's graph in one piece",
               Gate(min_agreement=0.97, max_bma_loss=0.01), needs_calibration=True,
               tflite=TensorTypes("int8", "int8", "float32", "float32"), routes=ROUTES, compute="int8"),
        Recipe("int8", ("tflite",), "full integer: int8 weights and activations, int8 input and output, calibrated "
               "(measured 96-97% top-1 agreement on the demo student and 7-9x slower than int8-mixed on CPU: "
               "fails its gate; built only when asked for)",
               Gate(min_agreement=0.97, max_bma_loss=0.01), needs_calibration=True,
               tflite=TensorTypes("int8", "int8", "int8", "int8"), routes=ROUTES, compute="int8"),
        Recipe("w8a16", ("tflite",), "int8 weights, int16 activations (LayerNorm's squared difference and rsqrt stay float), for int16-capable accelerators (NPUs, "
               "DSPs); CPUs run it on reference kernels, tens of times slower than fp32; built only when asked for",
               Gate(min_agreement=0.97, max_bma_loss=0.01), needs_calibration=True,
               tflite=TensorTypes("int8", "int16", "int16", "int16"), routes=("litert",), compute="int16"),
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


def recipes_for(target: str, text: str | None, route: str = DEFAULT_ROUTE) -> dict[str, list[Recipe]]:
    """--target / --recipes -> the recipes to build per target.

    With --target all each target builds the listed recipes it supports; a recipe that no
    chosen target supports, or an unknown name, is an error.
    """
    if route not in ROUTES:
        raise EdgeskinError(f"--route {route}: expected one of {', '.join(ROUTES)}")
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
        for recipe in mine if t == "tflite" else ():
            if route not in recipe.routes:
                raise EdgeskinError(f"--recipes: '{recipe.name}' is not built by the {ROUTE_LABELS[route]} route "
                                    f"(routes: {', '.join(recipe.routes)})")
        if mine:
            chosen[t] = mine
    return chosen
