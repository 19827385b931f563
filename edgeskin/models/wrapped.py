"""A user's own classifier in SkinViT's interface, so the pipeline converts and checks it unchanged.

The wrapped module keeps its own contract: a float tensor (N, 3, H, W), RGB, normalized with the
stated mean/std, in; logits (N, classes) out (or a tuple / ModelOutput whose first element /
`.logits` they are). Around it go the normalization (inside the graph, as in SkinViT: artifacts
take 0..255 pixels) and one exit, its output. It has no blocks the pipeline could look inside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from edgeskin.models.config import StatesContract
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.preprocess import PreprocessConfig

from .skinvit import PixelInput


@dataclass(frozen=True)
class WrappedConfig(StatesContract):
    """What the pipeline reads of a ModelConfig, for a model edgeskin did not build."""

    arch: str  # module-<ClassName>
    class_names: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    img_size: int = 224
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    depth: int = 1  # its one exit counts as block 1: artifacts and manifests name exit 1
    exits: tuple[int, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def exit_blocks(self) -> tuple[int, ...]:
        return (self.depth,)

    def to_dict(self) -> dict:
        return {**asdict(self), "preprocess": self.preprocess.to_dict()}


def logits_of(output) -> torch.Tensor | None:
    """The logits in what a classifier returns: a tensor, a ModelOutput (.logits), or a tuple or
    list whose first element they are; None when there is no tensor there."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, (tuple, list)) and output:
        logits = output[0]
    return logits if isinstance(logits, torch.Tensor) else None


class WrappedClassifier(PixelInput):
    """RGB pixels in 0..255 (N, 3, H, W) -> the wrapped module's logits; `exit` takes only its output."""

    def __init__(self, module: torch.nn.Module, config: WrappedConfig) -> None:
        super().__init__()
        self.module = module
        self.config = config
        self.set_normalization(config.mean, config.std)

    def forward(self, pixels: torch.Tensor, exit: int | None = None) -> torch.Tensor:
        if exit not in (None, self.config.depth):
            raise EdgeskinError(f"{self.config.arch} has one exit, its output (exit {self.config.depth}); exit {exit} asked")
        logits = logits_of(self.module(self.normalize(pixels)))
        if logits is None:
            raise EdgeskinError(f"{self.config.arch}: forward returned no logits tensor")
        return logits
