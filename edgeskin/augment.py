"""The paper's training augmentations, applied to a whole batch at once in torch.

Paper (albumentations): shortest side 450, ShiftScaleRotate(0.05, 0.05, +-90 deg, p=0.75),
random crop 400, RGB shift +-15 (p=0.5), brightness/contrast (p=0.5). Here images are cached
square at 224 * 450/400 = 252 px and one grid_sample does the affine and the random 224 crop,
so augmentation costs a few milliseconds per batch instead of a data-loader process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    output_size: int = 224
    cache_size: int = 252  # 224 * 450 / 400: the paper's 400-of-450 crop ratio
    shift: float = 0.05
    scale: float = 0.05
    rotate_degrees: float = 90.0
    p_affine: float = 0.75
    rgb_shift: float = 15.0
    p_rgb: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    p_brightness_contrast: float = 0.5


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _chance(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def augment_batch(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """uint8 (B,3,S,S) -> float (B,3,out,out) in 0..255, randomly transformed per image."""
    n = images.shape[0]
    x = images.float()
    angle = torch.where(_chance(n, config.p_affine, generator), _uniform(n, -1, 1, generator), torch.zeros(n))
    angle = angle * math.radians(config.rotate_degrees)
    affine_on = angle != 0
    scale = torch.where(affine_on, 1 + _uniform(n, -config.scale, config.scale, generator), torch.ones(n))
    shift = torch.where(affine_on[:, None], _uniform(2 * n, -config.shift, config.shift, generator).view(n, 2) * 2, torch.zeros(n, 2))
    crop = config.output_size / images.shape[-1]
    offset = _uniform(2 * n, -(1 - crop), 1 - crop, generator).view(n, 2)
    # output coords -> crop window -> inverse of (rotate, scale, shift) in normalized [-1, 1] space
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    theta = torch.cat([rotation * crop, (rotation @ offset[:, :, None]) - shift[:, :, None]], dim=2)
    grid = F.affine_grid(theta, [n, 3, config.output_size, config.output_size], align_corners=False)
    x = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)
    rgb = _uniform(3 * n, -config.rgb_shift, config.rgb_shift, generator).view(n, 3, 1, 1)
    x = x + rgb * _chance(n, config.p_rgb, generator).view(n, 1, 1, 1)
    bc_on = _chance(n, config.p_brightness_contrast, generator).view(n, 1, 1, 1)
    alpha = 1 + _uniform(n, -config.contrast, config.contrast, generator).view(n, 1, 1, 1)
    beta = 255 * _uniform(n, -config.brightness, config.brightness, generator).view(n, 1, 1, 1)
    x = torch.where(bc_on, x * alpha + beta, x)
    return x.clamp_(0, 255)
