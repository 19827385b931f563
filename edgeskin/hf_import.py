"""Import foreign checkpoints into SkinViT: the paper's Hugging Face layouts and timm state dicts.

Layouts (from the paper's public code): ViTForImageClassification (`vit.` + `classifier`),
DistilViT (`distilvit.` + `classifier`), FCViT (`vit.` + one `classifiers.i` per block, where
exit i reads block i's output through block i+1's `layernorm_before`). Their heads may carry a
9th output, UNK, which is never a label: it is dropped, so the imported model has the 8 ISIC
classes with the original logits for each.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path

import torch

from edgeskin.checkpoint import LoadedModel, model_from_state, read_safetensors, sha256_of
from edgeskin.models.config import ISIC_CLASSES, UNKNOWN_CLASS, WIDTHS, ModelConfig, config_for
from edgeskin.runtime.errors import EdgeskinError

ISIC2019_OUTPUTS = (*ISIC_CLASSES, UNKNOWN_CLASS)  # the ISIC 2019 ground-truth column order
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def torch_load_state(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True: tensors only, no arbitrary pickled objects."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing; the error says it all
            warnings.simplefilter("ignore")
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe pickle"
        raise EdgeskinError.about(path, f"refused: not a plain state dict (weights_only load failed: {first})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise EdgeskinError.about(path, f"not a readable PyTorch file ({str(exc).splitlines()[0]})") from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise EdgeskinError.about(path, "not a state dict (expected a mapping of names to tensors)")
    return loaded


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return read_safetensors(path)[0]
    if path.suffix in (".bin", ".pt", ".pth"):
        return torch_load_state(path)
    raise EdgeskinError.about(path, "unsupported checkpoint type (expected .safetensors, .bin, .pt or a Hugging Face folder)")


def _hf_prefix(state: dict) -> str | None:
    for prefix in ("vit", "distilvit", "fcvit"):
        if f"{prefix}.embeddings.cls_token" in state:
            return prefix
    return None


def import_foreign(path: Path, arch: str | None = None) -> LoadedModel:
    if path.is_dir():
        weights = next((path / name for name in _HF_WEIGHT_FILES if (path / name).is_file()), None)
        if weights is None:
            raise EdgeskinError.about(path, f"folder has no {' or '.join(_HF_WEIGHT_FILES)}")
        return _import_hf(path / "config.json", weights, sha256_of(path), source=path)
    state = _read_state(path)
    if _hf_prefix(state):
        return _import_hf(path.parent / "config.json", path, sha256_of(path), source=path, state=state)
    return _import_timm(path, state, arch)


# --- Hugging Face layouts ----------------------------------------------------------------------


def _read_hf_config(path: Path) -> dict:
    if not path.is_file():
        raise EdgeskinError.about(path, "missing: a Hugging Face checkpoint needs its config.json")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgeskinError.about(path, f"not valid JSON ({exc})") from None


def _output_labels(hf_config: dict, num_outputs: int, source: Path) -> list[str]:
    id2label = hf_config.get("id2label") or {}
    labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(num_outputs)]
    if all(re.fullmatch(r"LABEL_\d+", label) for label in labels):
        if num_outputs in (8, 9):  # unnamed heads of the paper's models follow the ISIC 2019 order
            return list(ISIC2019_OUTPUTS[:num_outputs])
        raise EdgeskinError.about(source, f"head has {num_outputs} unnamed outputs; expected 8 or 9 (ISIC 2019)")
    return [label.upper() if label.upper() in ISIC2019_OUTPUTS else label for label in labels]


def _class_rows(labels: list[str]) -> tuple[list[int], tuple[str, ...]]:
    """Rows of the head to keep, in canonical class order when the labels are ISIC codes; UNK dropped."""
    if set(labels) <= set(ISIC2019_OUTPUTS):
        kept = [c for c in ISIC_CLASSES if c in labels]
        return [labels.index(c) for c in kept], tuple(kept)
    rows = [i for i, label in enumerate(labels) if label != UNKNOWN_CLASS]
    return rows, tuple(labels[i] for i in rows)


def _arch_name(embed_dim: int, depth: int, num_heads: int, exits: bool) -> str:
    for width, (dim, heads) in WIDTHS.items():
        if (dim, heads) == (embed_dim, num_heads) and depth <= 12:
            return f"skindistilvit-{width}{depth}" + ("-exits" if exits else "")
    return f"vit-{embed_dim}x{depth}" + ("-exits" if exits else "")


def _import_hf(config_path: Path, weights: Path, digest: str, source: Path, state: dict | None = None) -> LoadedModel:
    hf = _read_hf_config(config_path)
    state = state if state is not None else _read_state(weights)
    prefix = _hf_prefix(state)
    if prefix is None:
        raise EdgeskinError.about(weights, "no ViT embeddings found (expected vit./distilvit. key names)")
    multi_exit = "classifiers.0.weight" in state
    try:
        depth = int(hf["num_hidden_layers"])
        embed_dim = int(hf["hidden_size"])
        num_heads = int(hf["num_attention_heads"])
        mlp_ratio = int(hf.get("intermediate_size", 4 * embed_dim)) / embed_dim
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgeskinError.about(config_path, f"missing or invalid ViT field {exc}") from None
    head_key = f"classifiers.{depth - 1}.weight" if multi_exit else "classifier.weight"
    if head_key not in state:
        raise EdgeskinError.about(weights, f"no classifier weights ({head_key})")
    labels = _output_labels(hf, state[head_key].shape[0], config_path)
    rows, class_names = _class_rows(labels)
    config = ModelConfig(
        arch=_arch_name(embed_dim, depth, num_heads, multi_exit),
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        patch_size=int(hf.get("patch_size", 16)),
        img_size=int(hf.get("image_size", 224)),
        exits=tuple(range(1, depth)) if multi_exit else (),
        class_names=class_names,
        layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
        qkv_bias=bool(hf.get("qkv_bias", True)),
    )
    ours = _hf_to_skinvit(state, prefix, depth, multi_exit, rows, weights, config.arch)
    model = model_from_state(config, ours, source)
    fmt = {"vit": "hf-fcvit" if multi_exit else "hf-vit", "distilvit": "hf-distilvit", "fcvit": "hf-fcvit"}[prefix]
    return LoadedModel(model, source, digest, fmt, {"imported_from": fmt, "hf_labels": labels})


def _hf_to_skinvit(state: dict, prefix: str, depth: int, multi_exit: bool, rows: list[int], source: Path, arch: str) -> dict:
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise EdgeskinError.about(source, f"config ({arch}) does not match weights: missing weight {key}")
        used.add(key)
        return state[key]

    p = f"{prefix}."
    out = {
        "vit.cls_token": take(p + "embeddings.cls_token"),
        "vit.pos_embed": take(p + "embeddings.position_embeddings"),
        "vit.patch_embed.proj.weight": take(p + "embeddings.patch_embeddings.projection.weight"),
        "vit.patch_embed.proj.bias": take(p + "embeddings.patch_embeddings.projection.bias"),
        "vit.norm.weight": take(p + "layernorm.weight"),
        "vit.norm.bias": take(p + "layernorm.bias"),
    }
    for i in range(depth):
        hf, ours = f"{p}encoder.layer.{i}.", f"vit.blocks.{i}."
        attention = hf + "attention.attention."
        for kind in ("weight", "bias"):
            out[ours + f"attn.qkv.{kind}"] = torch.cat([take(f"{attention}{n}.{kind}") for n in ("query", "key", "value")])
            for hf_name, our_name in (
                ("layernorm_before", "norm1"),
                ("attention.output.dense", "attn.proj"),
                ("layernorm_after", "norm2"),
                ("intermediate.dense", "mlp.fc1"),
                ("output.dense", "mlp.fc2"),
            ):
                out[f"{ours}{our_name}.{kind}"] = take(f"{hf}{hf_name}.{kind}")
    for kind in ("weight", "bias"):
        if multi_exit:
            out[f"vit.head.{kind}"] = take(f"classifiers.{depth - 1}.{kind}")[rows]
            for block in range(1, depth):  # FCViT: exit `block` uses the next block's pre-norm
                out[f"exits.{block}.fc.{kind}"] = take(f"classifiers.{block - 1}.{kind}")[rows]
                out[f"exits.{block}.norm.{kind}"] = take(f"{p}encoder.layer.{block}.layernorm_before.{kind}").clone()
        else:
            out[f"vit.head.{kind}"] = take(f"classifier.{kind}")[rows]
    unused = sorted(k for k in set(state) - used if ".pooler." not in k)  # the pooler is never used for classification
    if unused:
        raise EdgeskinError.about(source, f"config ({arch}) does not match weights: {len(unused)} unexpected weights (e.g. {unused[0]})")
    return out


# --- timm state dicts ----------------------------------------------------------------------------


def _import_timm(path: Path, state: dict, arch: str | None) -> LoadedModel:
    if any(k.startswith("vit.blocks.") for k in state):  # our own key names without metadata
        state = {k[4:] if k.startswith("vit.") else k: v for k, v in state.items()}
    if "cls_token" not in state or "blocks.0.attn.qkv.weight" not in state:
        raise EdgeskinError.about(path, "not a ViT state dict (no cls_token / blocks.0.attn.qkv.weight)")
    embed_dim = state["cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    outputs = state["head.weight"].shape[0] if "head.weight" in state else 0
    if outputs not in (8, 9):
        raise EdgeskinError.about(path, f"head has {outputs} outputs; expected 8 ISIC classes (or 9 with UNK)")
    rows, class_names = _class_rows(list(ISIC2019_OUTPUTS[:outputs]))
    base = config_for(arch) if arch else None
    patch = state["patch_embed.proj.weight"].shape[-1]
    grid = round((state["pos_embed"].shape[1] - 1) ** 0.5)
    num_heads = base.num_heads if base else max(1, embed_dim // 64)
    exits = tuple(sorted(int(k.split(".")[1]) for k in state if k.startswith("exits.") and k.endswith(".fc.weight")))
    config = ModelConfig(
        arch=arch or _arch_name(embed_dim, depth, num_heads, bool(exits)),
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        patch_size=patch,
        img_size=grid * patch,
        exits=exits,
        class_names=class_names,
    )
    ours = {}
    for key, value in state.items():
        if key.startswith("head.") or (key.startswith("exits.") and ".fc." in key):
            value = value[rows]
        ours[key if key.startswith("exits.") else f"vit.{key}"] = value
    model = model_from_state(config, ours, path)
    return LoadedModel(model, path, sha256_of(path), "timm", {"imported_from": "timm"})
