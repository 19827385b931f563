"""The model contract: the one typed statement of what a classifier takes and gives.

Class names in output order, the input size and resize, the border crop, the normalization
(applied inside every edgeskin graph, so callers feed 0..255 RGB) and which output is which.
A checkpoint's config and an artifact's metadata both expose it, `edgeskin info` prints it the
same way for both, and the runtime preprocesses by it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .preprocess import PreprocessConfig

# The output contract of every artifact, whatever the format and recipe: output 0 holds the class
# probabilities, output 1 the logits, each in the order of class_names. (Core ML packages,
# addressed by feature name, also carry `label` and the classifier's `label_probs`.)
OUTPUT_ROLES: tuple[str, ...] = ("probabilities", "logits")


@dataclass(frozen=True)
class ModelContract:
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocess: PreprocessConfig  # input size, resize, border crop
    outputs: tuple[str, ...] = OUTPUT_ROLES

    def describe(self) -> list[str]:
        """The contract as `edgeskin info` prints it (the same lines for checkpoints and artifacts)."""
        p = self.preprocess
        return [f"classes    {', '.join(self.class_names)}",
                f"input      RGB 0..255, resized to {p.size}x{p.size} ({p.resample}, aspect not kept); "
                f"crop_border={p.crop_border}",
                f"normalize  mean {tuple(self.mean)}, std {tuple(self.std)} (inside the model: feed 0..255 pixels)",
                f"outputs    {', '.join(f'{i}: {name}' for i, name in enumerate(self.outputs))}"]

    def to_dict(self) -> dict:
        return {"class_names": list(self.class_names), "mean": list(self.mean), "std": list(self.std),
                "preprocess": self.preprocess.to_dict(), "outputs": list(self.outputs)}
