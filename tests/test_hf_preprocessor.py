"""A Hugging Face folder's preprocessor_config.json: its size and resample filter are honoured
(checked against transformers' own ViTImageProcessor on a real image), what edgeskin cannot
reproduce is refused in one line naming the file and the value."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from edgeskin.model_loading import load_checkpoint
from edgeskin.runtime import EdgeskinError, PreprocessConfig, preprocess

SIZE = 64  # not 224: the size must flow from the folder into the model and the preprocessing
MEAN, STD = (0.485, 0.456, 0.406), (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny ViTForImageClassification (64x64 input, seeded perturbed weights) saved by transformers
    with a bicubic ViTImageProcessor: (folder, model)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=SIZE,
                       patch_size=16, num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    folder = tmp_path_factory.mktemp("hf") / "vit"
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": SIZE, "width": SIZE}, resample=3, image_mean=list(MEAN), image_std=list(STD)).save_pretrained(folder)
    return folder, model


def test_bicubic_processor_is_reproduced(hf_folder, samples_dir):
    from transformers import ViTImageProcessor

    folder, model = hf_folder
    loaded = load_checkpoint(folder)
    assert loaded.config.preprocess.resample == "bicubic" and loaded.config.preprocess.size == loaded.config.img_size == SIZE
    assert loaded.config.mean == MEAN and loaded.config.std == STD
    image = samples_dir / "ISIC_0000002.jpg"
    pixels = preprocess(image, loaded.config.preprocess)
    ours = (pixels.transpose(2, 0, 1) / 255 - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    theirs = ViTImageProcessor.from_pretrained(folder)(Image.open(image).convert("RGB"), return_tensors="np")["pixel_values"][0]
    # transformers resizes with torchvision's antialiased bicubic, edgeskin with Pillow's: the two
    # differ by at most one uint8 level (measured), 1/255/0.5 = 0.0078 here; 0.02 allows 2.5 levels.
    # A bilinear resize differs by about 0.14 on this image, so the bound does tell the filters apart.
    assert np.abs(ours - theirs).max() < 0.02 and np.abs(ours - theirs).mean() < 0.001
    bilinear = preprocess(image, PreprocessConfig(size=SIZE)).transpose(2, 0, 1) / 255
    assert np.abs((bilinear - np.array(MEAN)[:, None, None]) / 0.5 - theirs).max() > 0.05
    x = torch.tensor(pixels).permute(2, 0, 1)[None].float()
    with torch.no_grad():  # the 64x64 model itself, on the same pixels: the input size reached it
        torch.testing.assert_close(loaded.model(x), model(pixel_values=torch.from_numpy(ours)[None].float()).logits,
                                   atol=1e-4, rtol=1e-4)


def _with_processor(hf_folder, tmp_path, **changes):
    folder = tmp_path / "vit"
    shutil.copytree(hf_folder[0], folder)
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    processor.update(changes)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


@pytest.mark.parametrize(("changes", "message"), [
    ({"resample": 1}, r"resample 1 \(lanczos\): edgeskin resizes with bilinear or bicubic \(2 = bilinear, 3 = bicubic\)"),
    ({"size": {"height": 64, "width": 48}}, r'size \{"height": 64, "width": 48\}: edgeskin resizes to a square'),
    ({"size": {"shortest_edge": 64}, "crop_pct": 0.875}, r'size \{"shortest_edge": 64\} keeps the aspect ratio'),
    ({"do_center_crop": True, "crop_size": 56}, r"do_center_crop is true \(crop_size 56\): edgeskin resizes the whole image"),
    ({"size": 32}, r"size 32 differs from config\.json's image_size 64"),
    ({"do_rescale": False}, r"rescale_factor 1 \(do_rescale False\): edgeskin scales pixels by 1/255"),
])
def test_what_edgeskin_cannot_reproduce_is_refused(hf_folder, tmp_path, changes, message):
    folder = _with_processor(hf_folder, tmp_path, **changes)
    with pytest.raises(EdgeskinError, match=rf"^{folder}/preprocessor_config\.json: {message}"):
        load_checkpoint(folder)


def test_bilinear_default_and_no_normalization(hf_folder, tmp_path):
    folder = _with_processor(hf_folder, tmp_path, resample=2, size=SIZE, do_normalize=False)
    config = load_checkpoint(folder).config
    assert config.preprocess.resample == "bilinear" and config.preprocess.size == SIZE
    assert config.mean == (0.0, 0.0, 0.0) and config.std == (1.0, 1.0, 1.0)  # do_normalize false: x / 255 as it is
