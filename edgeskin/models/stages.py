"""A multi-exit SkinViT cut into stages (runtime/stages.py says what a stage is) as export modules.
Run in order, the stages compute exactly what SkinViT.forward(pixels, exit=k) does."""

from __future__ import annotations

import torch
from torch import nn

from edgeskin.runtime.stages import StageSpec, stage_plan

from .skinvit import SkinViT

__all__ = ["Stage", "StageSpec", "stage_plan"]


class Stage(nn.Module):
    """One stage of a SkinViT as an export module (NCHW pixels or tokens in; see StageSpec.outputs)."""

    def __init__(self, model: SkinViT, spec: StageSpec) -> None:
        super().__init__()
        self.model, self.spec = model.eval(), spec

    def forward(self, x: torch.Tensor):
        tokens = self.model._embed(x) if self.spec.first == 1 else x
        for block in self.model.vit.blocks[self.spec.first - 1:self.spec.exit]:
            tokens = block(tokens)
        logits = self.model._head(self.spec.exit, tokens)
        probabilities = torch.softmax(logits, dim=-1)
        return (probabilities, logits) if self.spec.final else (tokens, probabilities, logits)
