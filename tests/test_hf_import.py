"""Import of the paper's Hugging Face layouts, checked against an independent reference.

The reference below re-implements HF ViT semantics directly from the HF key names (separate
q/k/v, LayerNorm eps 1e-12, FCViT exits that borrow the next block's layernorm_before), so a
mistake in edgeskin's key mapping cannot cancel out.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from edgeskin.contract import StatedContract
from edgeskin.model_loading import load_checkpoint
from edgeskin.models import ISIC_CLASSES
from edgeskin.runtime import EdgeskinError

D, HEADS, DEPTH, PATCH, MLP = 64, 2, 3, 16, 128
# a 9-output head in a shuffled order, with UNK, as the paper's checkpoints may carry
HF_LABELS = ["NV", "MEL", "BCC", "UNK", "AK", "BKL", "DF", "SCC", "VASC"]


def hf_config(layers=DEPTH) -> dict:
    return {"model_type": "vit", "hidden_size": D, "num_hidden_layers": layers, "num_attention_heads": HEADS,
            "intermediate_size": MLP, "image_size": 224, "patch_size": PATCH, "layer_norm_eps": 1e-12,
            "qkv_bias": True, "hidden_act": "gelu", "id2label": {str(i): n for i, n in enumerate(HF_LABELS)}}


def hf_state(prefix: str, multi_exit: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale

    def ln(name):
        return {f"{name}.weight": 1 + rnd(D, scale=0.2), f"{name}.bias": rnd(D, scale=0.1)}

    def lin(name, out, inp):
        return {f"{name}.weight": rnd(out, inp, scale=1 / math.sqrt(inp)), f"{name}.bias": rnd(out, scale=0.1)}

    p = f"{prefix}."
    s = {p + "embeddings.cls_token": rnd(1, 1, D, scale=0.5), p + "embeddings.position_embeddings": rnd(1, 197, D, scale=0.5),
         p + "embeddings.patch_embeddings.projection.weight": rnd(D, 3, PATCH, PATCH, scale=0.03),
         p + "embeddings.patch_embeddings.projection.bias": rnd(D, scale=0.1), **ln(p + "layernorm")}
    for i in range(DEPTH):
        q = f"{p}encoder.layer.{i}."
        s.update(ln(q + "layernorm_before") | ln(q + "layernorm_after"))
        for n in ("query", "key", "value"):
            s.update(lin(f"{q}attention.attention.{n}", D, D))
        s.update(lin(q + "attention.output.dense", D, D) | lin(q + "intermediate.dense", MLP, D) | lin(q + "output.dense", D, MLP))
    heads = [f"classifiers.{i}" for i in range(DEPTH)] if multi_exit else ["classifier"]
    for h in heads:
        s.update(lin(h, len(HF_LABELS), D))
    return s


def reference_logits(s: dict, prefix: str, pixels255: torch.Tensor, multi_exit: bool) -> list[torch.Tensor]:
    """HF ViT(-FCViT) forward written from scratch; returns logits per exit (all 9 outputs)."""
    p, eps, hd = f"{prefix}.", 1e-12, D // HEADS
    x = (pixels255 / 255 - 0.5) / 0.5
    x = F.conv2d(x, s[p + "embeddings.patch_embeddings.projection.weight"], s[p + "embeddings.patch_embeddings.projection.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([s[p + "embeddings.cls_token"].expand(len(x), -1, -1), x], 1) + s[p + "embeddings.position_embeddings"]

    def ln(t, name):
        return F.layer_norm(t, (D,), s[name + ".weight"], s[name + ".bias"], eps)

    def lin(t, name):
        return F.linear(t, s[name + ".weight"], s[name + ".bias"])

    hidden = []
    for i in range(DEPTH):
        q = f"{p}encoder.layer.{i}."
        h = ln(x, q + "layernorm_before")
        qkv = [lin(h, f"{q}attention.attention.{n}").view(len(x), -1, HEADS, hd).transpose(1, 2) for n in ("query", "key", "value")]
        attn = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / math.sqrt(hd), -1)
        ctx = (attn @ qkv[2]).transpose(1, 2).reshape(len(x), -1, D)
        x = x + lin(ctx, q + "attention.output.dense")
        x = x + lin(F.gelu(lin(ln(x, q + "layernorm_after"), q + "intermediate.dense")), q + "output.dense")
        hidden.append(x)
    final = ln(x, p + "layernorm")[:, 0]
    if not multi_exit:
        return [lin(final, "classifier")]
    exits = [lin(ln(hidden[i], f"{p}encoder.layer.{i + 1}.layernorm_before")[:, 0], f"classifiers.{i}") for i in range(DEPTH - 1)]
    return exits + [lin(final, f"classifiers.{DEPTH - 1}")]


def canonical(logits9: torch.Tensor) -> torch.Tensor:
    return logits9[:, [HF_LABELS.index(c) for c in ISIC_CLASSES]]


def write_hf(folder, prefix, multi_exit, fmt):
    from safetensors.torch import save_file

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(hf_config()))
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    state = hf_state(prefix, multi_exit)
    if fmt == "safetensors":
        save_file(state, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return state


@pytest.mark.parametrize(("prefix", "fmt"), [("vit", "safetensors"), ("vit", "bin"), ("distilvit", "bin")])
def test_hf_single_head_matches_reference(tmp_path, sample_pixels, prefix, fmt):
    state = write_hf(tmp_path / "hf", prefix, False, fmt)
    pixels = torch.from_numpy(sample_pixels[:3]).permute(0, 3, 1, 2).float()
    loaded = load_checkpoint(tmp_path / "hf")
    assert loaded.config.class_names == ISIC_CLASSES  # UNK dropped, order canonical
    assert loaded.config.layer_norm_eps == 1e-12 and loaded.config.depth == DEPTH
    with torch.no_grad():
        ours = loaded.model(pixels)
        ref = canonical(reference_logits(state, prefix, pixels, False)[0])
    assert ref.abs().max() > 0.5  # a real signal, not near-zero outputs
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


def test_fcvit_multi_exit_matches_reference(tmp_path, sample_pixels):
    state = write_hf(tmp_path / "fc", "vit", True, "safetensors")
    pixels = torch.from_numpy(sample_pixels[3:5]).permute(0, 3, 1, 2).float()
    loaded = load_checkpoint(tmp_path / "fc")
    assert loaded.source_format == "hf-fcvit" and loaded.config.exit_blocks == (1, 2, 3)
    with torch.no_grad():
        ours = loaded.model.forward_exits(pixels)
        refs = reference_logits(state, "vit", pixels, True)
    for block in (1, 2, 3):
        torch.testing.assert_close(ours[block], canonical(refs[block - 1]), atol=2e-5, rtol=1e-4)


def test_hf_weights_without_config(tmp_path):
    from safetensors.torch import save_file

    save_file(hf_state("vit", False), str(tmp_path / "lonely.safetensors"))
    with pytest.raises(EdgeskinError, match=r"config\.json: missing: a Hugging Face checkpoint needs its config\.json"):
        load_checkpoint(tmp_path / "lonely.safetensors")


def test_hf_config_that_does_not_match_weights(tmp_path):
    folder = tmp_path / "hf"
    write_hf(folder, "vit", False, "safetensors")
    cfg = hf_config()
    cfg["num_hidden_layers"] = 2
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgeskinError, match=r"hf/model\.safetensors: config \(vit-64x2\) does not match weights: 16 unexpected weights"):
        load_checkpoint(folder)


# --- checkpoints written by transformers itself (5.x: native key layout, shards) --------------------


def _transformers_vit(num_labels: int, seed: int = 0):
    """A small transformers ViTForImageClassification with seeded, perturbed weights (eval mode)."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=D, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=MLP,
                       num_labels=num_labels, layer_norm_eps=1e-12)
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        for param in model.parameters():  # random init has zero biases and unit norms: perturb them all
            param.add_(torch.randn_like(param) * 0.05)
    return model


def _transformers_logits(model, pixels255, mean=0.5, std=0.5):
    with torch.no_grad():
        return model(pixel_values=(pixels255 / 255 - mean) / std).logits


def test_transformers_5_native_layout_and_shards_match_transformers(tmp_path, sample_pixels):
    model = _transformers_vit(num_labels=5)
    model.config.id2label = {i: name for i, name in enumerate("abcde")}
    model.save_pretrained(tmp_path / "hf", max_shard_size="100KB")  # several shards + model.safetensors.index.json
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    index = json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2  # really sharded (save_pretrained writes transformers 4 names)
    loaded = load_checkpoint(tmp_path / "hf")
    assert loaded.config.class_names == tuple("abcde")
    pixels = torch.from_numpy(sample_pixels[:4]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        ours = loaded.model(pixels)
    theirs = _transformers_logits(model, pixels)
    assert theirs.abs().max() > 0.5
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_native_transformers_5_key_names_in_one_file(tmp_path, sample_pixels):
    from safetensors.torch import save_file

    model = _transformers_vit(num_labels=3, seed=1)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert "vit.layers.0.attention.q_proj.weight" in state  # the layout the issue names
    (tmp_path / "hf").mkdir()
    save_file(state, str(tmp_path / "hf" / "model.safetensors"))
    (tmp_path / "hf" / "config.json").write_text(model.config.to_json_string())
    loaded = load_checkpoint(tmp_path / "hf", stated=StatedContract(("x", "y", "z"), (0.5,) * 3, (0.5,) * 3))
    pixels = torch.from_numpy(sample_pixels[:2]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(pixels), _transformers_logits(model, pixels), atol=1e-4, rtol=1e-4)


def test_fcvit_probs_every_exit_uses_the_last_classifier(tmp_path, sample_pixels):
    """The authors' FCViTForImageClassificationProbs: exit i = classifiers[-1](layer[i+1].layernorm_before(h_i)[:, 0]).
    Reference: transformers' own ViT encoder for the hidden states, heads applied as the authors' code does."""
    from safetensors.torch import save_file

    base = _transformers_vit(num_labels=len(HF_LABELS), seed=2)
    vit = base.vit
    g = torch.Generator().manual_seed(3)
    heads = [(torch.randn(len(HF_LABELS), D, generator=g) * 0.2, torch.randn(len(HF_LABELS), generator=g)) for _ in range(DEPTH)]
    state = {k: v.contiguous() for k, v in base.state_dict().items() if not k.startswith("classifier.")}
    for i, (w, b) in enumerate(heads):
        state[f"classifiers.{i}.weight"], state[f"classifiers.{i}.bias"] = w, b
    (tmp_path / "fc").mkdir()
    save_file(state, str(tmp_path / "fc" / "model.safetensors"))
    config = json.loads(base.config.to_json_string())
    config.update(architectures=["FCViTForImageClassificationProbs"], id2label={str(i): n for i, n in enumerate(HF_LABELS)})
    (tmp_path / "fc" / "config.json").write_text(json.dumps(config))
    (tmp_path / "fc" / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))

    loaded = load_checkpoint(tmp_path / "fc")
    assert loaded.source_format == "hf-fcvit-probs" and loaded.config.exit_blocks == (1, 2, 3)
    pixels = torch.from_numpy(sample_pixels[:3]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        out = vit(pixel_values=(pixels / 255 - 0.5) / 0.5, output_hidden_states=True)
        last_w, last_b = heads[-1]
        reference = {DEPTH: F.linear(out.last_hidden_state[:, 0], last_w, last_b)}
        for block in range(1, DEPTH):
            normed = vit.layers[block].layernorm_before(out.hidden_states[block]) if hasattr(vit, "layers") else \
                vit.encoder.layer[block].layernorm_before(out.hidden_states[block])
            reference[block] = F.linear(normed[:, 0], last_w, last_b)
        ours = loaded.model.forward_exits(pixels)
    for block in (1, 2, 3):
        torch.testing.assert_close(ours[block], canonical(reference[block]), atol=1e-4, rtol=1e-4)


def test_unnamed_outputs_need_classes_and_only_weights_are_hashed(tmp_path):
    folder = tmp_path / "hf"
    write_hf(folder, "vit", False, "safetensors")
    cfg = hf_config()
    cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(9)}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgeskinError, match=r"config\.json: id2label does not name the head's 9 outputs: pass --classes"):
        load_checkpoint(folder)
    stated = StatedContract(tuple(HF_LABELS))
    digest = load_checkpoint(folder, stated=stated).source_sha256
    (folder / "optimizer.pt").write_bytes(b"\0" * 1000)  # what an HF Trainer leaves beside the weights
    (folder / "checkpoint-500").mkdir()
    (folder / "checkpoint-500" / "model.safetensors").write_bytes(b"\1" * 1000)
    assert load_checkpoint(folder, stated=stated).source_sha256 == digest
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(EdgeskinError, match=r"hf: no preprocessor_config\.json with image_mean/image_std: pass --mean and --std"):
        load_checkpoint(folder, stated=stated)


# --- hostile config.json / preprocessor_config.json / weights (issue 13) ---------------------------

HF_FIELD_EDITS = [
    ({"hidden_size": 0}, "hidden_size must be a positive integer, got 0"),
    ({"num_attention_heads": "2"}, 'num_attention_heads must be a positive integer, got "2"'),
    ({"num_hidden_layers": 2.5}, "num_hidden_layers must be a positive integer, got 2.5"),
    ({"intermediate_size": None, "hidden_size": True}, "hidden_size must be a positive integer, got true"),
    ({"image_size": -224}, "image_size must be a positive integer, got -224"),
    ({"patch_size": [16]}, r"patch_size must be a positive integer, got \[16\]"),
    ({"layer_norm_eps": 0}, "layer_norm_eps must be positive, got 0"),
    ({"qkv_bias": "true"}, 'qkv_bias must be true or false, got "true"'),
    ({"architectures": "ViTForImageClassification"}, 'architectures must be a list of class names, got "ViTForImageClassification"'),
    ({"id2label": HF_LABELS}, r'id2label must map output indices to names, got \["NV", "MEL"'),
    ({"id2label": {"0": 5}}, r'id2label must map output indices to names, got \{"0": 5\}'),
    ({"num_attention_heads": 5}, "model config: embed_dim 64 is not divisible by num_heads 5"),
    ({"intermediate_size": 64 * 100}, "model config: mlp_ratio must be at most 16, got 100.0"),
]


@pytest.mark.parametrize(("edit", "message"), HF_FIELD_EDITS, ids=[m[:30] for _, m in HF_FIELD_EDITS])
def test_hf_config_fields_are_type_checked(tmp_path, edit, message):
    folder = tmp_path / "hf"
    write_hf(folder, "vit", False, "safetensors")
    (folder / "config.json").write_text(json.dumps({**hf_config(), **edit}))
    with pytest.raises(EdgeskinError, match=rf"^{folder}/config\.json: {message}"):
        load_checkpoint(folder)


def test_hf_config_that_is_not_an_object_or_lacks_a_field(tmp_path):
    folder = tmp_path / "hf"
    write_hf(folder, "vit", False, "safetensors")
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(EdgeskinError, match=r"hf/config\.json: expected a JSON object$"):
        load_checkpoint(folder)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in hf_config().items() if k != "hidden_size"}))
    with pytest.raises(EdgeskinError, match=r"hf/config\.json: missing ViT field 'hidden_size' \(a ViT config\.json has "
                                            r"num_hidden_layers, hidden_size, num_attention_heads\)$"):
        load_checkpoint(folder)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("image_std", [0.5, 0, 0.5], r"image_std\[1\] must be positive, got 0"),
    ("image_mean", [0.5, "x", 0.5], r'image_mean\[1\] must be a finite number, got "x"'),
    ("rescale_factor", float("nan"), r"rescale_factor nan \(do_rescale True\): edgeskin scales pixels by 1/255"),
])
def test_hf_preprocessor_numbers_are_checked(tmp_path, key, value, message):
    folder = tmp_path / "hf"
    write_hf(folder, "vit", False, "safetensors")
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3, key: value}))
    with pytest.raises(EdgeskinError, match=rf"hf/preprocessor_config\.json: {message}"):
        load_checkpoint(folder)


@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json", "model.safetensors"])
def test_hf_folder_with_a_fifo_in_place_of_a_file(tmp_path, name):
    from tests.test_checkpoint_limits import refused_without_hanging

    folder = tmp_path / "hf"
    write_hf(folder, "vit", False, "safetensors")
    (folder / name).unlink()
    os.mkfifo(folder / name)
    with pytest.raises(EdgeskinError, match=rf"hf/{name}: is a named pipe \(FIFO\)"):
        refused_without_hanging(load_checkpoint, folder)


def test_hf_index_listing_a_fifo_shard(tmp_path):
    folder = tmp_path / "hf"
    write_hf(folder, "vit", False, "safetensors")
    (folder / "model.safetensors").rename(folder / "model-00001.safetensors")
    os.mkfifo(folder / "model-00002.safetensors")
    names = list(hf_state("vit", False))
    index = {"weight_map": {k: "model-00001.safetensors" for k in names[1:]} | {names[0]: "model-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(EdgeskinError, match=r"model\.safetensors\.index\.json: lists shard model-00002\.safetensors: is a named pipe"):
        load_checkpoint(folder)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("classifier.weight", torch.zeros(9), r"model\.safetensors: classifier\.weight has shape \(9,\), not \(outputs, hidden_size\)"),
    ("vit.encoder.layer.0.attention.attention.key.weight", torch.zeros(3),
     r"model\.safetensors: weights do not form a Hugging Face ViT \(RuntimeError: "),
    ("classifier.bias", torch.zeros(()), r"model\.safetensors: weights do not form a Hugging Face ViT \(IndexError: "),
])
def test_hf_weights_of_weird_shapes(tmp_path, key, value, message):
    from safetensors.torch import save_file

    folder = tmp_path / "hf"
    write_hf(folder, "vit", False, "safetensors")
    save_file({**hf_state("vit", False), key: value}, str(folder / "model.safetensors"))
    with pytest.raises(EdgeskinError, match=message):
        load_checkpoint(folder)
