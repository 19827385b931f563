"""SkinViT: timm's VisionTransformer with optional exit heads, and its deployable wrapper."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from edgeskin._timm_shim import import_timm

from .config import ModelConfig


class ExitHead(nn.Module):
    """Classifier on the CLS token after an intermediate block: LayerNorm + Linear."""

    def __init__(self, embed_dim: int, num_classes: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim, eps=eps)
        self.fc = nn.Linear(embed_dim, num_classes)

    def forward(self, cls_token: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(cls_token))


class PixelInput(nn.Module):
    """A model whose input is RGB pixels in 0..255: normalization happens inside forward, so every
    export carries it and no artifact can be fed wrongly normalized pixels (DESIGN.md section 3)."""

    def set_normalization(self, mean, std) -> None:
        std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        # pixels/255 -> (x - mean) / std, folded into one multiply-add; not saved in checkpoints.
        self.register_buffer("pixel_scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("pixel_shift", -mean / std, persistent=False)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.to(self.pixel_scale.dtype) * self.pixel_scale + self.pixel_shift


class SkinViT(PixelInput):
    """Pre-norm ViT (patch 16, CLS token) whose input is RGB pixels in 0..255 (see PixelInput)."""

    def __init__(self, config: ModelConfig, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        import_timm()
        from timm.models.vision_transformer import VisionTransformer

        self.config = config
        self.vit = VisionTransformer(
            img_size=config.img_size,
            patch_size=config.patch_size,
            num_classes=config.num_classes,
            embed_dim=config.embed_dim,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            qkv_bias=config.qkv_bias,
            class_token=True,
            global_pool="token",
            norm_layer=partial(nn.LayerNorm, eps=config.layer_norm_eps),
            drop_path_rate=drop_path_rate,
        )
        self.exits = nn.ModuleDict(
            {str(k): ExitHead(config.embed_dim, config.num_classes, config.layer_norm_eps) for k in config.exits if k != config.depth}
        )
        self.set_normalization(config.mean, config.std)

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        x = vit.patch_embed(self.normalize(pixels))
        x = vit._pos_embed(x)
        x = vit.patch_drop(x)
        return vit.norm_pre(x)

    def _head(self, block: int, tokens: torch.Tensor) -> torch.Tensor:
        if block == self.config.depth:
            return self.vit.forward_head(self.vit.norm(tokens))
        return self.exits[str(block)](tokens[:, 0])

    def forward_exits(self, pixels: torch.Tensor) -> dict[int, torch.Tensor]:
        """Logits of every classifier (exit heads and the final head), keyed by block number."""
        tokens = self._embed(pixels)
        outputs: dict[int, torch.Tensor] = {}
        heads = set(self.config.exit_blocks)
        for index, block in enumerate(self.vit.blocks, start=1):
            tokens = block(tokens)
            if index in heads:
                outputs[index] = self._head(index, tokens)
        return outputs

    def forward_cls_tokens(self, pixels: torch.Tensor, blocks: int | None = None, with_embedding: bool = False):
        """The CLS token after each of the first `blocks` blocks (locates where an artifact diverges);
        with_embedding=True also returns every token after the patch and position embedding, first."""
        tokens = self._embed(pixels)
        found = [tokens] if with_embedding else []
        for block in self.vit.blocks[: blocks or self.config.depth]:
            tokens = block(tokens)
            found.append(tokens[:, 0])
        return found

    def forward(self, pixels: torch.Tensor, exit: int | None = None, all_exits: bool = False):
        """Logits of the head after block `exit` (default: the final head); later blocks are skipped.

        all_exits=True returns forward_exits' dict instead (training goes through forward so that
        a DistributedDataParallel wrapper sees the call).
        """
        if all_exits:
            return self.forward_exits(pixels)
        block = self.config.depth if exit is None else exit
        if block not in self.config.exit_blocks:
            raise ValueError(f"{self.config.arch} has no exit after block {block}; exits: {self.config.exit_blocks}")
        tokens = self._embed(pixels)
        for layer in self.vit.blocks[:block]:
            tokens = layer(tokens)
        return self._head(block, tokens)


class Deployable(nn.Module):
    """uint8-valued RGB (N,3,224,224 float, 0..255) -> class probabilities of one exit."""

    def __init__(self, model: SkinViT, exit: int | None, with_logits: bool) -> None:
        super().__init__()
        self.model = model.eval()
        self.exit = model.config.depth if exit is None else exit
        self.with_logits = with_logits
        if self.exit not in model.config.exit_blocks:
            raise ValueError(f"{model.config.arch} has no exit after block {self.exit}; exits: {model.config.exit_blocks}")

    def forward(self, pixels: torch.Tensor):
        logits = self.model(pixels, exit=self.exit)
        probabilities = torch.softmax(logits, dim=-1)
        return (probabilities, logits) if self.with_logits else probabilities  # runtime.metadata.OUTPUT_ROLES


def deployable(model: SkinViT, exit: int | None = None, with_logits: bool = False) -> Deployable:
    """The export wrapper: normalization and softmax inside, one exit, eval mode."""
    return Deployable(model, exit, with_logits)


def build_model(config: ModelConfig, drop_path_rate: float = 0.0) -> SkinViT:
    return SkinViT(config, drop_path_rate=drop_path_rate)


def seeded_weights(model: SkinViT, seed: int = 0) -> SkinViT:
    """Perturb a model's weights reproducibly, in place.

    Random init hides conversion and import errors (zero biases, unit LayerNorms, near-constant
    outputs); seeded perturbed weights do not. Used by tests and benchmarks of untrained sizes.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1:
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
            elif "head" in name or "fc" in name:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return model.eval()
