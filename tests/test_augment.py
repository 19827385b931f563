"""The paper's augmentations, batched: ranges, determinism and identity when switched off."""

from __future__ import annotations

import torch

from edgeskin.augment import AugmentConfig, augment_batch


def _batch(samples):
    return torch.from_numpy(samples).permute(0, 3, 1, 2)


def test_shapes_range_and_seeded_determinism(sample_pixels):
    x = _batch(sample_pixels[:4])
    cfg = AugmentConfig(cache_size=224)
    a = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    b = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    c = augment_batch(x, cfg, torch.Generator().manual_seed(2))
    assert a.shape == (4, 3, 224, 224) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 255
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_identity_when_every_transform_is_off(sample_pixels):
    x = _batch(sample_pixels[:2])
    cfg = AugmentConfig(cache_size=224, p_affine=0, p_rgb=0, p_brightness_contrast=0)
    out = augment_batch(x, cfg, torch.Generator().manual_seed(0))
    assert (out - x.float()).abs().max() < 1e-3


def test_crop_from_larger_cache_keeps_content(sample_pixels):
    x = torch.nn.functional.interpolate(_batch(sample_pixels[:1]).float(), size=252, mode="bilinear").round().to(torch.uint8)
    cfg = AugmentConfig(cache_size=252, p_affine=0, p_rgb=0, p_brightness_contrast=0)
    out = augment_batch(x, cfg, torch.Generator().manual_seed(0))
    assert out.shape[-1] == 224
    assert abs(out.mean() - x.float().mean()) < 12  # a crop of the same picture, not padding


def test_rotation_is_applied_when_forced(sample_pixels):
    x = _batch(sample_pixels[:1])
    cfg = AugmentConfig(cache_size=224, p_affine=1.0, shift=0, scale=0, p_rgb=0, p_brightness_contrast=0)
    out = augment_batch(x, cfg, torch.Generator().manual_seed(3))
    assert (out - x.float()).abs().mean() > 5
