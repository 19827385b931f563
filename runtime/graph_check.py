"""An artifact's embedded metadata is a claim about its graph, checked when the model loads.

Labels, the input contract and the output roles all come from the metadata; if it disagrees with
the graph (two class names for an 8-class output, a 256x256 input size for a 224x224 graph, the
output roles swapped), every prediction would be wrong or fail. Each disagreement is one line at
load time instead: first by shape and type, then on one probe image, where an output named
`probabilities` must hold probabilities (in [0, 1], summing to 1, the softmax of `logits`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .backends import TensorSpec
from .errors import EdgeskinError
from .metadata import ArtifactMetadata
from .model_contract import OUTPUT_ROLES

LAYOUTS = {"NHWC": (1, 2, 3), "NCHW": (2, 3, 1)}  # layout -> axes of (height, width, channels)
PROBE_GRAY = 128
# float outputs: probabilities sum to 1 within this; quantized ones within it plus a step per class
SUM_TOLERANCE = 0.02
SOFTMAX_TOLERANCE = 0.1


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def check_declared(path: object, metadata: ArtifactMetadata, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
    """Metadata vs the graph's tensors: input shape, layout and type, output count, roles and sizes."""
    declared = metadata.input
    if declared.layout not in LAYOUTS:
        raise EdgeskinError.about(path, f"metadata input layout {declared.layout!r} is not NHWC or NCHW")
    if len(inputs) != 1:
        raise EdgeskinError.about(path, f"the graph takes {len(inputs)} inputs; an edgeskin classifier takes one image")
    graph = inputs[0]
    size = metadata.contract.preprocess.size
    h, w, c = (declared.shape[i] if len(declared.shape) == 4 else None for i in LAYOUTS[declared.layout])
    if len(declared.shape) != 4 or (h, w, c) != (size, size, 3):
        raise EdgeskinError.about(path, f"metadata input {_shape(declared.shape)} {declared.layout} does not hold "
                                  f"{size}x{size} RGB images (the preprocessing size)")
    known = all(isinstance(d, int) and d > 0 for d in graph.shape)
    if known and tuple(graph.shape) != tuple(declared.shape):
        raise EdgeskinError.about(path, f"metadata says input {_shape(declared.shape)} {declared.layout}, "
                                  f"the graph takes {_shape(graph.shape)}")
    if graph.dtype != declared.dtype:
        raise EdgeskinError.about(path, f"metadata says input {declared.dtype}, the graph takes {graph.dtype}")
    roles = metadata.outputs
    unknown = [r for r in roles if r not in OUTPUT_ROLES]
    if unknown or len(set(roles)) != len(roles) or not roles:
        raise EdgeskinError.about(path, f"metadata output roles {list(roles)}: expected each of {', '.join(OUTPUT_ROLES)} at most once")
    if len(outputs) != len(roles):
        raise EdgeskinError.about(path, f"model has {len(outputs)} outputs, metadata names {len(roles)}")
    classes = len(metadata.class_names)
    for index, (role, spec) in enumerate(zip(roles, outputs, strict=True)):
        values = int(np.prod(spec.shape)) if all(isinstance(d, int) and d > 0 for d in spec.shape) else None
        if values is not None and values != classes:
            raise EdgeskinError.about(path, f"metadata names {classes} classes but output {index} ({role}) "
                                      f"has {values} values")


def check_on_probe(path: object, metadata: ArtifactMetadata, outputs: Sequence[TensorSpec],
                   run: Callable[[np.ndarray], dict[str, np.ndarray]]) -> None:
    """Run one gray image: the output named probabilities must behave as probabilities."""
    size = metadata.contract.preprocess.size
    result = run(np.full((size, size, 3), PROBE_GRAY, np.uint8))
    steps = {role: spec.scale * len(metadata.class_names) for role, spec in zip(metadata.outputs, outputs, strict=True)}
    probabilities = result.get("probabilities")
    if probabilities is not None:
        tolerance = SUM_TOLERANCE + steps["probabilities"]
        total = float(probabilities.sum())
        if not np.isfinite(total) or abs(total - 1) > tolerance or probabilities.min() < -tolerance or probabilities.max() > 1 + tolerance:
            raise EdgeskinError.about(path, f"the output named probabilities is not a probability vector on a probe image "
                                      f"(sum {total:.3g}, range {probabilities.min():.3g}..{probabilities.max():.3g}): "
                                      "the metadata's output roles do not match the graph")
    logits = result.get("logits")
    if logits is not None and probabilities is not None:
        shifted = np.exp(logits - logits.max())
        gap = float(np.abs(shifted / shifted.sum() - probabilities).max())
        if not gap <= SOFTMAX_TOLERANCE + steps["probabilities"]:
            raise EdgeskinError.about(path, f"the softmax of the output named logits differs from the output named "
                                      f"probabilities by {gap:.3g} on a probe image: the output roles do not match the graph")
