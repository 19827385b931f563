"""Import foreign checkpoint files into SkinViT: the paper's Hugging Face layouts and timm state dicts
(in-memory modules: edgeskin.module_import).

Layouts (from the paper's public code): ViTForImageClassification (`vit.` + `classifier`),
DistilViT (`distilvit.` + `classifier`), FCViT (`vit.` + one `classifiers.i` per block, where
exit i reads block i's output through block i+1's `layernorm_before`); FCViTForImageClassificationProbs
(config.json `architectures`) applies the last classifier at every exit, its other classifiers
untrained. Key names may be transformers 4's (`encoder.layer.N.attention.attention.query`) or
transformers 5's (`layers.N.attention.q_proj`); weights may be one file or shards listed in a
`*.index.json`. A 9th output, UNK, is never a label: it is dropped.

Class names and normalization come from the checkpoint where it carries them (id2label,
preprocessor_config.json, read with its resize by edgeskin.hf_preprocessor), else from what the
user states (edgeskin.contract); never assumed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from edgeskin.checkpoint import LoadedModel, model_from_state, read_safetensors, sha256_of, torch_load_state
from edgeskin.contract import ContractMissing, StatedContract
from edgeskin.hf_preprocessor import read_json, read_preprocessing
from edgeskin.models.config import (
    ISIC_CLASSES,
    UNKNOWN_CLASS,
    WIDTHS,
    ModelConfig,
    config_for,
    int_problem,
    number_problem,
)
from edgeskin.runtime.errors import EdgeskinError, shown
from edgeskin.runtime.paths import path_problem, read_bytes

ISIC2019_OUTPUTS = (*ISIC_CLASSES, UNKNOWN_CLASS)  # the ISIC 2019 ground-truth column order
_HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_HF_SIDE_FILES = ("config.json", "preprocessor_config.json")  # hashed with the weights; nothing else is
PROBS_ARCHITECTURE = "FCViTForImageClassificationProbs"
PAPER_CLASSES_HINT = "the paper's checkpoints: --classes " + ",".join(ISIC2019_OUTPUTS)
# transformers 5 names -> transformers 4 names, inside one encoder layer
_V5_LAYER_NAMES = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
                   "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense",
                   "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.name.endswith(".index.json"):
        return _read_shards(path)
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


def _shard_files(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(read_bytes(index, "sharded-checkpoint index"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EdgeskinError.about(index, "not a sharded-checkpoint index (no weight_map)") from None
    if not all(isinstance(n, str) and n and "/" not in n and not n.startswith("..") for n in names):
        raise EdgeskinError.about(index, f"lists shard {shown(names[0])}, which is not a file name in this folder")
    shards = [index.parent / name for name in names]
    for shard in shards:
        problem = path_problem(shard, "checkpoint shard")
        if problem:
            raise EdgeskinError.about(index, f"lists shard {shard.name}: {problem}")
    return shards


def _read_shards(index: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for shard in _shard_files(index):
        state.update(_read_state(shard))
    return state


def _hf_weight_files(folder: Path, weights: Path) -> list[Path]:
    """The files whose bytes define the model: weights (every shard), config, preprocessor config.
    Optimizer states, Trainer checkpoints and logs beside them are not read, nor hashed."""
    files = _shard_files(weights) + [weights] if weights.name.endswith(".index.json") else [weights]
    return files + [folder / name for name in _HF_SIDE_FILES if os.path.lexists(folder / name)]


def import_foreign(path: Path, arch: str | None = None, stated: StatedContract | None = None) -> LoadedModel:
    stated = stated or StatedContract()
    if path.is_dir():
        weights = next((path / name for name in _HF_WEIGHT_FILES if os.path.lexists(path / name)), None)
        if weights is None:
            raise EdgeskinError.about(path, f"folder has no {' or '.join(_HF_WEIGHT_FILES)}")
        return _import_hf(path, weights, sha256_of(_hf_weight_files(path, weights)), stated, source=path)
    state = _read_state(path)
    if _hf_prefix(state):
        return _import_hf(path.parent, path, sha256_of([path]), stated, source=path, state=state)
    return import_timm_state(path, state, arch, stated)


@contextmanager
def shape_errors(path: Path, layout: str) -> Iterator[None]:
    """Weights of a rank or size no ViT has (a 1-D cls_token, a 0-d head, a block numbered 'x') meet
    indexing and arithmetic that assume a ViT: what that raises becomes one line naming the file."""
    try:
        yield
    except (AttributeError, TypeError, KeyError, IndexError, ValueError, ZeroDivisionError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise EdgeskinError.about(path, f"weights do not form a {layout} ({type(exc).__name__}: {first})") from None


# --- Hugging Face layouts ----------------------------------------------------------------------


def _read_hf_config(path: Path) -> dict:
    if not os.path.lexists(path):
        raise EdgeskinError.about(path, "missing: a Hugging Face checkpoint needs its config.json")
    return read_json(path)


_HF_INTS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "image_size", "patch_size")


def _hf_fields(hf: dict, path: Path) -> dict:
    """config.json's fields that build the model, each type-checked first: a string, a float or a zero
    there would be a traceback, or a model built from a number the file does not mean."""
    required = _HF_INTS[:3]
    missing = [k for k in required if k not in hf]
    if missing:
        raise EdgeskinError.about(path, f"missing ViT field {missing[0]!r} (a ViT config.json has {', '.join(required)})")
    values = {"image_size": 224, "patch_size": 16, "layer_norm_eps": 1e-12, "qkv_bias": True, "architectures": []}
    values |= {k: hf[k] for k in (*_HF_INTS, *values) if hf.get(k) is not None or k in required}
    hidden = values["hidden_size"]
    values.setdefault("intermediate_size", 4 * hidden if isinstance(hidden, int) else None)  # transformers' default
    problem = next((p for p in (int_problem(k, values[k]) for k in _HF_INTS) if p), None)
    problem = problem or number_problem("layer_norm_eps", values["layer_norm_eps"], positive=True)
    if problem is None and not isinstance(values["qkv_bias"], bool):
        problem = f"qkv_bias must be true or false, got {shown(values['qkv_bias'])}"
    architectures = values["architectures"]
    if problem is None and not (isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)):
        problem = f"architectures must be a list of class names, got {shown(architectures)}"
    if problem:
        raise EdgeskinError.about(path, problem)
    return values


def _output_labels(hf_config: dict, num_outputs: int, stated: StatedContract, source: Path) -> list[str]:
    """Names of the head's outputs: stated (--classes) first, else id2label when it names them."""
    if stated.class_names is not None:
        if len(stated.class_names) != num_outputs:
            raise EdgeskinError.about(source, f"--classes names {len(stated.class_names)} classes but the head has {num_outputs} outputs")
        return list(stated.class_names)
    id2label = hf_config.get("id2label") or {}
    if not isinstance(id2label, dict) or not all(isinstance(v, str) for v in id2label.values()):
        raise EdgeskinError.about(source, f"id2label must map output indices to names, got {shown(id2label)}")
    labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(num_outputs)]
    if all(re.fullmatch(r"LABEL_\d+", label) for label in labels):
        raise ContractMissing.about(source, f"id2label does not name the head's {num_outputs} outputs: pass --classes "
                                  f"(or --classes-file) in output order ({PAPER_CLASSES_HINT})")
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


def _legacy_names(state: dict) -> dict:
    """transformers 5 key names (`vit.layers.N.attention.q_proj`) -> transformers 4's, which the
    mapping below reads; other names pass through."""
    pattern = re.compile(r"^(\w+)\.layers\.(\d+)\.(.+)\.(weight|bias)$")
    out = {}
    for key, value in state.items():
        match = pattern.match(key)
        if match:
            prefix, layer, name, kind = match.groups()
            key = f"{prefix}.encoder.layer.{layer}.{_V5_LAYER_NAMES.get(name, name)}.{kind}"
        out[key] = value
    return out


def _import_hf(folder: Path, weights: Path, digest: str, stated: StatedContract, source: Path, state: dict | None = None) -> LoadedModel:
    config_path = folder / "config.json"
    hf = _read_hf_config(config_path)
    state = _legacy_names(state if state is not None else _read_state(weights))
    prefix = _hf_prefix(state)
    if prefix is None:
        raise EdgeskinError.about(weights, "no ViT embeddings found (expected vit./distilvit. key names)")
    multi_exit = "classifiers.0.weight" in state
    fields = _hf_fields(hf, config_path)
    depth, embed_dim, num_heads, img_size = (fields[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "image_size"))
    head_key = f"classifiers.{depth - 1}.weight" if multi_exit else "classifier.weight"
    if head_key not in state:
        raise EdgeskinError.about(weights, f"no classifier weights ({head_key})")
    if state[head_key].ndim != 2:
        raise EdgeskinError.about(weights, f"{head_key} has shape {tuple(state[head_key].shape)}, not (outputs, hidden_size)")
    labels = _output_labels(hf, state[head_key].shape[0], stated, config_path)
    rows, class_names = _class_rows(labels)
    preprocessing = read_preprocessing(folder, img_size, stated)
    probs = PROBS_ARCHITECTURE in fields["architectures"]
    if probs and not multi_exit:
        raise EdgeskinError.about(config_path, f"says {PROBS_ARCHITECTURE} but the weights have one classifier, not one per block")
    config = ModelConfig.from_dict({
        "arch": _arch_name(embed_dim, depth, num_heads, multi_exit), "embed_dim": embed_dim, "depth": depth, "num_heads": num_heads,
        "mlp_ratio": fields["intermediate_size"] / embed_dim, "patch_size": fields["patch_size"], "img_size": img_size,
        "exits": tuple(range(1, depth)) if multi_exit else (), "class_names": class_names,
        "layer_norm_eps": fields["layer_norm_eps"], "qkv_bias": fields["qkv_bias"], "mean": preprocessing.mean,
        "std": preprocessing.std, "preprocess": {"size": img_size, "resample": preprocessing.resample}}, config_path)
    config = stated.preprocessing_only().apply(config, source)  # classes and normalization are set above
    with shape_errors(weights, "Hugging Face ViT"):
        ours = _hf_to_skinvit(state, prefix, depth, multi_exit, rows, weights, config.arch, shared_head=probs)
    model = model_from_state(config, ours, source)
    fmt = {"vit": "hf-fcvit" if multi_exit else "hf-vit", "distilvit": "hf-distilvit", "fcvit": "hf-fcvit"}[prefix]
    fmt = "hf-fcvit-probs" if probs else fmt
    return LoadedModel(model, source, digest, fmt, {"imported_from": fmt, "hf_labels": labels})


def _hf_to_skinvit(state: dict, prefix: str, depth: int, multi_exit: bool, rows: list[int], source: Path, arch: str,
                   shared_head: bool = False) -> dict:
    """SkinViT's state dict from HF names. shared_head (FCViTProbs): every exit uses the last
    classifier; the others were never trained and are not read."""
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
                head = depth - 1 if shared_head else block - 1
                out[f"exits.{block}.fc.{kind}"] = take(f"classifiers.{head}.{kind}")[rows].clone()
                out[f"exits.{block}.norm.{kind}"] = take(f"{p}encoder.layer.{block}.layernorm_before.{kind}").clone()
        else:
            out[f"vit.head.{kind}"] = take(f"classifier.{kind}")[rows]
    if shared_head:
        used |= {k for k in state if k.startswith("classifiers.")}  # the untrained per-block heads
    unused = sorted(k for k in set(state) - used if ".pooler." not in k)  # the pooler is never used for classification
    if unused:
        raise EdgeskinError.about(source, f"config ({arch}) does not match weights: {len(unused)} unexpected weights (e.g. {unused[0]})")
    return out


# --- timm state dicts ----------------------------------------------------------------------------


def import_timm_state(path: Path, state: dict, arch: str | None, stated: StatedContract, num_heads: int | None = None,
                      digest: str | None = None, keywords: bool = False) -> LoadedModel:
    """A timm ViT's weights in a SkinViT; `keywords`: name the Python arguments (classes=, ...) in errors, not the flags."""
    if any(k.startswith("vit.blocks.") for k in state):  # our own key names without metadata
        state = {k[4:] if k.startswith("vit.") else k: v for k, v in state.items()}
    with shape_errors(path, "timm ViT"):
        shapes = _timm_shapes(path, state)
    embed_dim, depth, outputs = shapes["embed_dim"], shapes["depth"], shapes["outputs"]
    if outputs < 2:
        raise EdgeskinError.about(path, f"no classification head (head.weight with at least 2 outputs; found {outputs})")
    missing = stated.missing(needs_classes=True, needs_normalization=True, python=keywords)
    if missing:
        raise ContractMissing.about(path, f"a timm state dict carries no class names or normalization: pass {', '.join(missing)} "
                                  f"(head has {outputs} outputs)")
    if len(stated.class_names) != outputs:
        raise EdgeskinError.about(path, f"--classes names {len(stated.class_names)} classes but the head has {outputs} outputs")
    rows, class_names = _class_rows(list(stated.class_names))
    base = config_for(arch) if arch else None
    num_heads = num_heads or (base.num_heads if base else max(1, embed_dim // 64))
    img_size = shapes["grid"] * shapes["patch"]
    config = ModelConfig.from_dict({
        "arch": arch or f"vit-{embed_dim}x{depth}" + ("-exits" if shapes["exits"] else ""),  # a user's model, not a SkinDistilViT name
        "embed_dim": embed_dim, "depth": depth, "num_heads": num_heads, "mlp_ratio": shapes["mlp_hidden"] / embed_dim,
        "patch_size": shapes["patch"], "img_size": img_size, "exits": shapes["exits"], "class_names": class_names,
        "mean": stated.mean, "std": stated.std,
        "preprocess": {"size": img_size}}, path)  # images resized to what the position embeddings take
    config = stated.preprocessing_only().apply(config, path)  # classes and normalization are set above
    ours = {}
    with shape_errors(path, "timm ViT"):
        for key, value in state.items():
            if key.startswith("head.") or (key.startswith("exits.") and ".fc." in key):
                value = value[rows]
            ours[key if key.startswith("exits.") else f"vit.{key}"] = value
    model = model_from_state(config, ours, path)
    return LoadedModel(model, path, digest or sha256_of([path]), "timm", {"imported_from": "timm"})


_TIMM_RANKS = {"cls_token": 3, "pos_embed": 3, "patch_embed.proj.weight": 4, "blocks.0.mlp.fc1.weight": 2, "head.weight": 2}


def _timm_shapes(path: Path, state: dict) -> dict:
    """What a timm ViT's tensor shapes say about its config, each tensor's rank checked first."""
    if "cls_token" not in state or "blocks.0.attn.qkv.weight" not in state:
        raise EdgeskinError.about(path, "not a ViT state dict (no cls_token / blocks.0.attn.qkv.weight)")
    for key, rank in _TIMM_RANKS.items():
        if key not in state and key != "head.weight":
            raise EdgeskinError.about(path, f"not a timm ViT state dict (no {key})")
        if key in state and state[key].ndim != rank:
            raise EdgeskinError.about(path, f"{key} has shape {tuple(state[key].shape)}: a timm ViT's has {rank} dimensions")
    tokens, patch = state["pos_embed"].shape[1], state["patch_embed.proj.weight"].shape[-1]
    grid = round(max(tokens - 1, 0) ** 0.5)
    if grid < 1 or grid * grid != tokens - 1:
        raise EdgeskinError.about(path, f"pos_embed has {tokens} positions: not a CLS token plus a square grid of patches")
    return {"embed_dim": state["cls_token"].shape[-1], "patch": patch, "grid": grid,
            "depth": 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks.")),
            "outputs": state["head.weight"].shape[0] if "head.weight" in state else 0,
            "mlp_hidden": state["blocks.0.mlp.fc1.weight"].shape[0],
            "exits": tuple(sorted(int(k.split(".")[1]) for k in state if k.startswith("exits.") and k.endswith(".fc.weight")))}
