"""Native checkpoints round-trip exactly; foreign and bad files give one-line errors."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from edgeskin.checkpoint import save_checkpoint
from edgeskin.contract import StatedContract
from edgeskin.model_loading import load_checkpoint
from edgeskin.models import ISIC_CLASSES
from edgeskin.runtime import EdgeskinError
from tests.conftest import perturbed_model


@pytest.fixture
def pixels(sample_pixels):
    return torch.from_numpy(sample_pixels[:4]).permute(0, 3, 1, 2).float()


def test_native_roundtrip_is_exact(tmp_path, pixels):
    model = perturbed_model("skindistilvit-ti2-exits")
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"note": "test"})
    loaded = load_checkpoint(path)
    assert loaded.source_format == "edgeskin" and loaded.provenance == {"note": "test"}
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    with torch.no_grad():
        assert torch.equal(model(pixels), loaded.model(pixels))
        assert torch.equal(model(pixels, exit=1), loaded.model(pixels, exit=1))
    assert len(loaded.source_sha256) == 64
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_config_that_does_not_match_weights(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = save_checkpoint(perturbed_model("skindistilvit-ti2"), tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    config = json.loads(meta["edgeskin.config"])
    config["depth"] = 3  # claims a third block the weights do not have
    meta["edgeskin.config"] = json.dumps(config)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(EdgeskinError, match=r"bad\.safetensors: config \(skindistilvit-ti2\) does not match weights: .*missing weights"):
        load_checkpoint(tmp_path / "bad.safetensors")


class Payload:
    """An arbitrary object: what weights_only=True must refuse to unpickle."""


def test_pickle_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump(Payload(), handle)
    with pytest.raises(EdgeskinError, match=r"evil\.pt: refused: not a plain state dict"):
        load_checkpoint(path)
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(EdgeskinError, match=r"list\.pt: not a state dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_missing_unsupported_and_garbage_files(tmp_path):
    with pytest.raises(EdgeskinError, match=r"nothing\.safetensors: no such checkpoint"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x01")
    with pytest.raises(EdgeskinError, match=r"m\.onnx: unsupported checkpoint type"):
        load_checkpoint(tmp_path / "m.onnx")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(EdgeskinError, match=r"junk\.safetensors: not a readable \.safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")


ISIC_STATED = StatedContract(ISIC_CLASSES, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
ISIC_WITH_UNK = StatedContract((*ISIC_CLASSES, "UNK"), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_timm_state_dict_import(tmp_path, pixels):
    model = perturbed_model("skindistilvit-ti2")
    timm_state = {k[len("vit."):]: v for k, v in model.state_dict().items()}
    torch.save(timm_state, tmp_path / "timm.pth")
    loaded = load_checkpoint(tmp_path / "timm.pth", stated=ISIC_STATED)
    assert loaded.source_format == "timm" and loaded.config.depth == 2 and loaded.config.num_heads == 3
    with torch.no_grad():
        assert torch.equal(loaded.model(pixels), model(pixels))
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": timm_state, "epoch": 3}, wrapped)
    assert load_checkpoint(wrapped, stated=ISIC_STATED).config.embed_dim == 192


def test_timm_state_dict_needs_classes_and_normalization_stated(tmp_path):
    """Never a silent ISIC default: a state dict names no classes and no normalization."""
    model = perturbed_model("skindistilvit-ti2")
    torch.save({k[len("vit."):]: v for k, v in model.state_dict().items()}, tmp_path / "timm.pth")
    with pytest.raises(EdgeskinError, match=r"timm\.pth: .*pass --classes \(or --classes-file\), --mean, --std \(head has 8 outputs\)"):
        load_checkpoint(tmp_path / "timm.pth")
    with pytest.raises(EdgeskinError, match=r"--classes names 3 classes but the head has 8 outputs"):
        load_checkpoint(tmp_path / "timm.pth", stated=StatedContract(("a", "b", "c"), (0.5,) * 3, (0.5,) * 3))
    mine = StatedContract(tuple("abcdefgh"), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), crop_border=True)
    config = load_checkpoint(tmp_path / "timm.pth", stated=mine).config
    assert config.class_names == tuple("abcdefgh") and config.mean == (0.485, 0.456, 0.406) and config.preprocess.crop_border


def test_timm_state_dict_with_unk_output_drops_it(tmp_path, pixels):
    model = perturbed_model("skindistilvit-ti2")
    state = {k[len("vit."):]: v for k, v in model.state_dict().items()}
    state["head.weight"] = torch.cat([state["head.weight"], torch.randn(1, 192)])
    state["head.bias"] = torch.cat([state["head.bias"], torch.tensor([50.0])])  # a huge UNK logit
    torch.save(state, tmp_path / "unk.pt")
    loaded = load_checkpoint(tmp_path / "unk.pt", stated=ISIC_WITH_UNK)
    assert loaded.config.num_classes == 8
    with torch.no_grad():
        assert torch.equal(loaded.model(pixels), model(pixels))


def test_in_memory_timm_module_reads_its_pretrained_cfg_normalization():
    import timm

    from edgeskin.module_import import import_module

    module = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, depth=1).eval()
    module.pretrained_cfg = {**module.pretrained_cfg, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    loaded = import_module(module, StatedContract(("x", "y", "z")))
    assert loaded.config.mean == (0.485, 0.456, 0.406) and loaded.config.std == (0.229, 0.224, 0.225)
    assert loaded.config.arch == "vit-192x1" and loaded.source_format == "timm"
    stated = import_module(module, StatedContract(("x", "y", "z"), (0.5,) * 3, (0.5,) * 3))
    assert stated.config.mean == (0.5, 0.5, 0.5)  # stated beats carried
    pixels = torch.randint(0, 256, (2, 3, 224, 224)).float()
    with torch.no_grad():
        expected = module((pixels / 255 - torch.tensor(loaded.config.mean).view(1, 3, 1, 1)) / torch.tensor(loaded.config.std).view(1, 3, 1, 1))
        torch.testing.assert_close(loaded.model(pixels), expected, atol=1e-5, rtol=1e-4)


def test_timm_state_dict_at_another_size_is_fed_that_size(tmp_path, samples_dir):
    """Images are resized to the size the position embeddings were made for, not a fixed 224."""
    import timm
    from safetensors.torch import save_file

    from edgeskin.data import load_images, open_dataset

    module = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=96, depth=1, num_classes=8).eval()
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp_path / "vit96.safetensors"))
    loaded = load_checkpoint(tmp_path / "vit96.safetensors", stated=StatedContract(ISIC_CLASSES, (0.5,) * 3, (0.5,) * 3))
    assert loaded.config.img_size == loaded.config.preprocess.size == 96
    dataset = open_dataset(samples_dir.parent, "test")
    pixels = load_images(type(dataset)(dataset.name, dataset.samples[:2], dataset.class_names), loaded.config.preprocess, progress=False)
    with torch.no_grad():
        assert loaded.model(torch.from_numpy(pixels).permute(0, 3, 1, 2).float()).shape == (2, 8)
