"""Hostile checkpoints (issue 13): a bad config, a config that asks for gigabytes, a zip bomb, a FIFO
or tensors of the wrong rank are one-line errors, before anything large is allocated or opened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from edgeskin.checkpoint import save_checkpoint
from edgeskin.contract import StatedContract
from edgeskin.model_loading import load_checkpoint
from edgeskin.models import ISIC_CLASSES
from edgeskin.runtime import EdgeskinError
from tests.conftest import perturbed_model
from tests.helpers import assert_one_line_error, run_cli

ISIC_STATED = StatedContract(ISIC_CLASSES, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def refused_without_hanging(call, *args, **kwargs) -> None:
    """Run `call` in a daemon thread: a reader blocked on a FIFO fails the test instead of hanging it."""
    outcome: dict = {}

    def target():
        try:
            call(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), f"{call.__name__} blocked (a FIFO opened instead of refused)"
    if "error" in outcome:
        raise outcome["error"]


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> tuple[dict, dict, dict]:
    """A tiny native checkpoint's tensors, metadata and config (ti2: 2 blocks, 192 wide)."""
    from safetensors import safe_open

    path = save_checkpoint(perturbed_model("skindistilvit-ti2"), tmp_path_factory.mktemp("native") / "m.safetensors")
    with safe_open(str(path), "pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    return tensors, meta, json.loads(meta["edgeskin.config"])


def write_native(path: Path, native, config: object) -> Path:
    """The tiny checkpoint's weights under another config (any JSON value)."""
    from safetensors.torch import save_file

    tensors, meta, _ = native
    save_file(tensors, str(path), metadata={**meta, "edgeskin.config": json.dumps(config)})
    return path


CONFIG_EDITS = [
    ({"num_heads": 0}, "num_heads must be a positive integer, got 0"),
    ({"embed_dim": 0}, "embed_dim must be a positive integer, got 0"),
    ({"depth": 49}, "depth must be at most 48, got 49"),
    ({"num_heads": 5}, "embed_dim 192 is not divisible by num_heads 5"),
    ({"patch_size": 15}, "img_size 224 is not divisible by patch_size 15"),
    ({"img_size": 8, "patch_size": 8}, "img_size must be at least 16, got 8"),
    ({"mlp_ratio": 4000}, "mlp_ratio must be at most 16, got 4000"),
    ({"mlp_ratio": "4"}, 'mlp_ratio must be a finite number, got "4"'),
    ({"exits": [0, 3]}, r"exits must be distinct blocks 1..2, got \[0, 3\]"),
    ({"class_names": {"0": "MEL"}}, r'class_names must be a non-empty list of names, got \{"0": "MEL"\}'),
    ({"class_names": []}, r"class_names must be a non-empty list of names, got \[\]"),
    ({"class_names": ["MEL", "MEL"]}, 'class_names lists "MEL" twice'),
    ({"class_names": ["MEL", " "]}, r'class_names\[1\] must be a non-empty string, got " "'),
    ({"mean": [0.5, 0.5]}, r"mean must be three numbers \(R, G, B\), got \[0.5, 0.5\]"),
    ({"std": [0.5, 0, 0.5]}, r"std\[1\] must be positive, got 0"),
    ({"layer_norm_eps": -1}, "layer_norm_eps must be positive, got -1"),
    ({"qkv_bias": "yes"}, 'qkv_bias must be true or false, got "yes"'),
    ({"arch": ""}, 'arch must be a non-empty name, got ""'),
    ({"preprocess": []}, r"preprocess must be a mapping, got \[\]"),
    ({"preprocess": {"size": 224.5}}, "preprocess.size must be an integer from 1 to 4096, got 224.5"),
    ({"preprocess": {"crop_border": "no"}}, 'preprocess.crop_border must be true or false, got "no"'),
    ({"preprocess": {"resample": "lanczos"}}, 'preprocess.resample must be one of bilinear, bicubic, got "lanczos"'),
    ({"preprocess": {"shape": 224}}, r"unknown preprocess keys \['shape'\]"),
    ({"hidden_size": 192}, r"unknown keys \['hidden_size'\]"),
]


@pytest.mark.parametrize(("edit", "message"), CONFIG_EDITS, ids=[m[:30] for _, m in CONFIG_EDITS])
def test_native_config_values_are_checked_before_a_model_is_built(tmp_path, native, edit, message):
    path = write_native(tmp_path / "bad.safetensors", native, {**native[2], **edit})
    with pytest.raises(EdgeskinError, match=rf"^{tmp_path}/bad\.safetensors: model config: {message}$"):
        load_checkpoint(path)


def test_native_config_of_the_wrong_shape(tmp_path, native):
    config = {k: v for k, v in native[2].items() if k != "num_heads"}
    with pytest.raises(EdgeskinError, match=r"bad\.safetensors: model config: missing field 'num_heads'$"):
        load_checkpoint(write_native(tmp_path / "bad.safetensors", native, config))
    with pytest.raises(EdgeskinError, match=r"bad\.safetensors: model config: expected a JSON object, got \[1, 2\]$"):
        load_checkpoint(write_native(tmp_path / "bad.safetensors", native, [1, 2]))


def test_the_cli_reports_a_bad_config_in_one_line(tmp_path, native):
    path = write_native(tmp_path / "bad.safetensors", native, {**native[2], "num_heads": 0})
    assert_one_line_error(run_cli("info", path), "bad.safetensors: model config: num_heads must be a positive integer, got 0")


def test_a_config_past_the_parameter_limit_is_refused_before_allocation(tmp_path, native):
    config = {**native[2], "embed_dim": 8192, "num_heads": 64, "depth": 48, "mlp_ratio": 16}
    with pytest.raises(EdgeskinError, match=r"bad\.safetensors: config \(skindistilvit-ti2\) describes 115,981,950,984 "
                                            r"parameters \(463\.9 GB as float32\), over the 1,000,000,000 limit$"):
        load_checkpoint(write_native(tmp_path / "bad.safetensors", native, config))


MEMORY_PROBE = """
import json, resource, sys
from edgeskin.model_loading import load_checkpoint
from edgeskin.runtime import EdgeskinError
load_checkpoint(sys.argv[1])  # the tiny valid checkpoint: torch, timm and the loader warmed up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_checkpoint(sys.argv[2])
    message = None
except EdgeskinError as exc:
    message = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grown_mb": (after - before) / 1024, "message": message}))
"""


def test_a_large_config_that_does_not_match_allocates_nothing(tmp_path, native):
    """embed_dim 2048 x 12 blocks is 606M parameters, 2.4 GB if built: the meta-device comparison refuses it for free."""
    good = write_native(tmp_path / "good.safetensors", native, native[2])
    big = write_native(tmp_path / "big.safetensors", native, {**native[2], "embed_dim": 2048, "num_heads": 16, "depth": 12})
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(good), str(big)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["message"].startswith(f"{big}: config (skindistilvit-ti2) does not match weights: shape mismatch: "
                                        "vit.blocks.0.attn.proj.bias (192,) vs (2048,) (+30 more); 120 missing weights")
    assert result["grown_mb"] < 100, result


def test_zip_bomb_is_refused_before_torch_load(tmp_path):
    """200 MB of deflated zeros in a ~0.2 MB zip: torch.save stores entries, so no real .bin unpacks past its size."""
    path = tmp_path / "bomb.bin"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb/data.pkl", "w", force_zip64=True) as entry:
            chunk = bytes(16 << 20)
            for _ in range(200 // 16 + 1):
                entry.write(chunk)
    unpacked, limit = 13 * (16 << 20), 2 * path.stat().st_size + (64 << 20)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(EdgeskinError, match=rf"bomb\.bin: refused: its zip entries unpack to {unpacked:,} bytes, "
                                            rf"over the {limit:,}-byte limit \(twice the file size \+ 64 MiB"):
        load_checkpoint(path, stated=ISIC_STATED)


def test_zip_whose_directory_cannot_be_read(tmp_path):
    model = perturbed_model("skindistilvit-ti2")
    torch.save({k[len("vit."):]: v for k, v in model.state_dict().items()}, tmp_path / "timm.pt")
    assert load_checkpoint(tmp_path / "timm.pt", stated=ISIC_STATED).config.depth == 2  # the bound passes a real file
    data = (tmp_path / "timm.pt").read_bytes()
    (tmp_path / "broken.pt").write_bytes(data.replace(b"PK\x01\x02", b"PK\x09\x09"))  # central directory entries
    with pytest.raises(EdgeskinError, match=r"broken\.pt: not a readable PyTorch file \(its zip directory cannot be read: "):
        load_checkpoint(tmp_path / "broken.pt", stated=ISIC_STATED)


@pytest.mark.parametrize("name", ["model.safetensors", "model.bin", "model.pt"])
def test_fifo_checkpoint_is_refused_not_opened(tmp_path, name):
    os.mkfifo(tmp_path / name)
    with pytest.raises(EdgeskinError, match=rf"/{name}: is a named pipe \(FIFO\)"):
        refused_without_hanging(load_checkpoint, tmp_path / name, stated=ISIC_STATED)


def test_broken_link_and_link_loop(tmp_path):
    (tmp_path / "gone.safetensors").symlink_to(tmp_path / "deleted.safetensors")
    with pytest.raises(EdgeskinError, match=r"gone\.safetensors: broken symbolic link \(to .*deleted\.safetensors\)$"):
        load_checkpoint(tmp_path / "gone.safetensors")
    (tmp_path / "loop.pt").symlink_to(tmp_path / "loop.pt")
    with pytest.raises(EdgeskinError, match=r"loop\.pt: symbolic link loop$"):
        load_checkpoint(tmp_path / "loop.pt")


def timm_state() -> dict[str, torch.Tensor]:
    return {k[len("vit."):]: v for k, v in perturbed_model("skindistilvit-ti2").state_dict().items()}


WEIRD_TIMM = [
    ("cls_token", torch.zeros(192), r"cls_token has shape \(192,\): a timm ViT's has 3 dimensions"),
    ("head.weight", torch.zeros(8), r"head\.weight has shape \(8,\): a timm ViT's has 2 dimensions"),
    ("pos_embed", torch.zeros(197, 192), r"pos_embed has shape \(197, 192\): a timm ViT's has 3 dimensions"),
    ("pos_embed", torch.zeros(1, 100, 192), "pos_embed has 100 positions: not a CLS token plus a square grid of patches"),
    ("patch_embed.proj.weight", torch.zeros(192, 3, 16), r"patch_embed\.proj\.weight has shape \(192, 3, 16\): a timm ViT's has 4"),
    ("blocks.x.norm1.weight", torch.zeros(192), r"weights do not form a timm ViT \(ValueError: invalid literal for int\(\)"),
    ("head.bias", torch.zeros(()), r"weights do not form a timm ViT \(IndexError: "),
]


@pytest.mark.parametrize(("key", "value", "message"), WEIRD_TIMM, ids=[f"{k}-{tuple(v.shape)}" for k, v, _ in WEIRD_TIMM])
def test_timm_state_dict_of_weird_shapes(tmp_path, key, value, message):
    torch.save({**timm_state(), key: value}, tmp_path / "weird.pth")
    with pytest.raises(EdgeskinError, match=rf"weird\.pth: {message}"):
        load_checkpoint(tmp_path / "weird.pth", stated=ISIC_STATED)


def test_in_memory_timm_vit_without_blocks():
    import timm

    from edgeskin.module_import import import_module

    module = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=8, depth=1)
    module.blocks = torch.nn.Sequential()
    with pytest.raises(EdgeskinError, match=r"^<in-memory VisionTransformer>: weights do not form a timm ViT \(IndexError: "):
        import_module(module, ISIC_STATED)
