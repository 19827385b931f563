"""In-memory PyTorch modules -> LoadedModel (the Python API's `load_model(module)`).

Checkpoint files are read by edgeskin.hf_import; a module is already built, so what it needs is
different: its identity is a hash of its state dict (there is no file), and its contract (classes,
normalization) is read from the module where it carries one, else stated.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import torch

from edgeskin.checkpoint import LoadedModel, model_from_state
from edgeskin.contract import StatedContract
from edgeskin.hf_import import import_timm_state
from edgeskin.runtime.errors import EdgeskinError


def import_module(module: torch.nn.Module, stated: StatedContract) -> LoadedModel:
    """An in-memory model: a SkinViT (its own contract, stated facts override) or a timm
    VisionTransformer with a CLS-token head (classes and normalization must be stated)."""
    from edgeskin.models import SkinViT

    source = Path(f"<in-memory {type(module).__name__}>")
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    digest = state_digest(state)
    if isinstance(module, SkinViT):
        config = stated.apply(module.config, source)
        return LoadedModel(model_from_state(config, state, source), source, digest, "module", {"imported_from": "module"})
    timm_vit = all(hasattr(module, a) for a in ("cls_token", "blocks", "patch_embed", "head"))
    if not timm_vit or getattr(module, "global_pool", "token") != "token" or getattr(module, "cls_token", None) is None:
        raise EdgeskinError(f"{type(module).__name__}: edgeskin converts a SkinViT, a timm VisionTransformer with a CLS-token "
                            "head, or a checkpoint path; for other models save a timm or Hugging Face ViT checkpoint")
    heads = getattr(module.blocks[0].attn, "num_heads", None)
    return import_timm_state(source, state, None, _with_pretrained_cfg(stated, module), num_heads=heads, digest=digest)


def _with_pretrained_cfg(stated: StatedContract, module) -> StatedContract:
    """A timm module carries its normalization in pretrained_cfg (mean/std): a fact read, unless stated."""
    cfg = getattr(module, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if stated.mean is None and stated.std is None and mean is not None and std is not None and len(mean) == len(std) == 3:
        return replace(stated, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))
    return stated


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names and raw bytes, in name order: the in-memory model's identity in manifests."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
