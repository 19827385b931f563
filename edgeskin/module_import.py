"""In-memory PyTorch modules -> LoadedModel (the Python API's `load_model(module)`).

Checkpoint files are read by edgeskin.hf_import; a module is already built, so what it needs is
different: its identity is a hash of its state dict (there is no file), and its contract (classes,
normalization) is read from the module where it carries one, else stated. A SkinViT or a timm
ViT becomes a SkinViT (block by block analysis works on it); any other classifier is wrapped
(edgeskin.models.wrapped), checked by one forward pass.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import replace
from pathlib import Path

import torch

from edgeskin.checkpoint import LoadedModel, model_from_state
from edgeskin.contract import ContractMissing, StatedContract
from edgeskin.hf_import import import_timm_state, shape_errors
from edgeskin.models.wrapped import WrappedClassifier, WrappedConfig, logits_of
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.preprocess import PreprocessConfig

DEFAULT_INPUT_SIZE = 224


def import_module(module: torch.nn.Module, stated: StatedContract) -> LoadedModel:
    """An in-memory model: a SkinViT (its own contract, stated facts override), a timm
    VisionTransformer with a CLS-token head, or any classifier (see edgeskin.models.wrapped);
    classes and normalization must be stated where the module does not carry them."""
    from edgeskin.models import SkinViT

    source = Path(f"<in-memory {type(module).__name__}>")
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    digest = state_digest(state)
    if isinstance(module, SkinViT):
        config = stated.apply(module.config, source)
        return LoadedModel(model_from_state(config, state, source), source, digest, "module", {"imported_from": "module"})
    timm_vit = all(hasattr(module, a) for a in ("cls_token", "blocks", "patch_embed", "head"))
    if timm_vit and getattr(module, "global_pool", "token") == "token" and getattr(module, "cls_token", None) is not None:
        with shape_errors(source, "timm ViT"):  # an empty or odd `blocks` is the module's problem, said in one line
            heads = getattr(module.blocks[0].attn, "num_heads", None)
        return import_timm_state(source, state, None, _with_pretrained_cfg(stated, module), num_heads=heads, digest=digest, keywords=True)
    model = _wrapped(module, _with_pretrained_cfg(stated, module), source)
    return LoadedModel(model, source, digest, "module", {"imported_from": "module", "class": _qualified_name(module)})


def _wrapped(module: torch.nn.Module, stated: StatedContract, source: Path) -> WrappedClassifier:
    """A copy of `module` (on the CPU, in eval mode: the caller's object is left as it is) behind the
    normalization, its class count checked by one forward pass on a mid-grey image."""
    missing = stated.missing(needs_classes=True, needs_normalization=True, python=True)
    if missing:
        raise ContractMissing.about(source, f"a generic module carries no class names or normalization: pass {', '.join(missing)} "
                                  "(it is fed RGB (N, 3, H, W) normalized with mean/std and must return logits (N, classes))")
    if next(module.parameters(), None) is None:
        raise EdgeskinError.about(source, "has no parameters: not a trained classifier")
    size = stated.input_size or DEFAULT_INPUT_SIZE
    config = WrappedConfig(arch=f"module-{type(module).__name__}", class_names=stated.class_names, mean=stated.mean,
                           std=stated.std, img_size=size, preprocess=PreprocessConfig(size=size))
    model = WrappedClassifier(copy.deepcopy(module).cpu().float(), stated.preprocessing_only().apply(config, source)).eval()
    try:
        with torch.no_grad():
            output = model.module(model.normalize(torch.full((1, 3, size, size), 128.0)))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's forward is the same mismatch of contracts
        first = (str(exc).strip().splitlines() or [""])[0]
        raise EdgeskinError.about(source, f"forward on a normalized (1, 3, {size}, {size}) float tensor failed ({type(exc).__name__}: "
                                  f"{first}); pass input_size= if the module takes another size") from None
    logits = logits_of(output)
    if logits is None or logits.ndim != 2 or logits.shape[0] != 1:
        got = f"shape {tuple(logits.shape)}" if logits is not None else type(output).__name__
        raise EdgeskinError.about(source, f"forward returned {got}, not logits (N, classes) (or a tuple / .logits holding them)")
    if logits.shape[1] != config.num_classes:
        raise EdgeskinError.about(source, f"classes= names {config.num_classes} classes but the module returns {logits.shape[1]} logits")
    return model


def _qualified_name(module: torch.nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _with_pretrained_cfg(stated: StatedContract, module) -> StatedContract:
    """A timm module carries its normalization in pretrained_cfg (mean/std): a fact read, unless stated.
    Any timm model has one; for a generic module it is read the same way."""
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
