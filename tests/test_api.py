"""A user's own timm ViT through the CLI and the Python API: the stated contract, end to end.

The model is timm's vit_tiny_patch16_224 with 5 classes and seeded, perturbed weights (random init
hides conversion errors), saved as a plain timm state dict; 3 of its 12 blocks, because the onnx2tf route
takes about 3 minutes for all 12 here (the full model is the README's and the note's run). Its verdict images are real bundled
images labelled with its own classes, as a user's folder would be.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import assert_one_line_error, run_cli

CLASSES = ("a", "b", "c", "d", "e")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    """(timm module, its .safetensors path, a 40-image folder labelled a..e with train/val splits)."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=len(CLASSES), depth=3).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.1 if param.ndim == 1 else 0.05 if ("head" in name or "fc" in name) else 0.0
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    folder = tmp_path_factory.mktemp("user")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return model, folder / "model.safetensors", _labelled_images(folder / "images-abcde")


def _labelled_images(folder):
    from tests.conftest import BUNDLED

    folder.mkdir()
    (folder / "images").symlink_to(BUNDLED / "images")
    names = sorted(p.name for p in (BUNDLED / "images").glob("*.jpg"))[:60]
    rows = [f"{n},{CLASSES[i % 5]},{'train' if i < 40 else 'val'}" for i, n in enumerate(names)]
    (folder / "labels.csv").write_text("image,label,split\n" + "\n".join(rows) + "\n")
    return folder


def _timm_probabilities(model, pixels: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.softmax(model(x), -1).numpy()


def test_cli_refuses_a_state_dict_without_classes(user_model, tmp_path):
    _, path, _ = user_model
    done = run_cli("convert", path, "--target", "tflite", "--recipes", "fp32", "--out", tmp_path / "o")
    assert_one_line_error(done, "model.safetensors", "--classes")
    assert not (tmp_path / "o").exists()
    done = run_cli("convert", path, "--classes", "a,b,c", "--mean", "0.5", "--std", "0.5", "--out", tmp_path / "o")
    assert_one_line_error(done, "--classes names 3 classes but the head has 5 outputs")


def test_cli_converts_with_the_stated_contract_and_matches_timm(user_model, tmp_path, sample_pixels):
    from edgeskin.runtime import load

    model, path, images = user_model
    done = run_cli("convert", path, "--target", "tflite", "--recipes", "fp32", "--classes", ",".join(CLASSES),
                   "--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)), "--data", images, "--out", tmp_path / "o")
    assert done.returncode == 0, done.stderr
    (artifact,) = (tmp_path / "o").glob("*.tflite")
    predictor = load(artifact)
    assert tuple(predictor.class_names) == CLASSES
    ours = np.stack([predictor.predict_pixels(p).probabilities for p in sample_pixels])
    theirs = _timm_probabilities(model, sample_pixels)
    assert theirs.max(1).mean() > 0.3  # not a flat output
    assert np.abs(ours - theirs).max() < 1e-4
    done = run_cli("info", artifact)
    assert done.returncode == 0 and "a, b, c, d, e" in done.stdout and "0.485" in done.stdout, done.stdout
    # parity against the same state dict needs no flags again: it carries none, the artifact recorded them
    done = run_cli("parity", tmp_path / "o", "--data", images, "--split", "val", "--no-bench")
    assert done.returncode == 0, done.stderr
    assert "using the artifacts' recorded contract (a, b, c, d, e; mean (0.485, 0.456, 0.406)" in done.stderr
    assert "100.0%" in done.stdout and "MEL sens" not in done.stdout  # no melanoma class, no melanoma column
    import edgeskin

    run = edgeskin.verify(tmp_path / "o", reference=path, data=images, split="val")
    assert [(c.recipe, c.verdict, c.parity.n_images) for c in run.checks] == [("fp32", "pass", 20)]


def test_python_api_in_memory_module_convert_and_verify(user_model, tmp_path, sample_pixels):
    import edgeskin

    model, _, images = user_model
    result = edgeskin.convert(model, target="onnx", out=tmp_path / "m", classes=CLASSES, mean=MEAN, std=STD, data=images)
    (artifact,) = result.artifacts
    assert result.passed and artifact.verdict == "pass" and artifact.parity.agreement == 1.0
    assert result.manifest.source_checkpoint.path == "<in-memory VisionTransformer>"
    predictions = edgeskin.load(artifact.path).predict(list(sample_pixels[:4]))
    assert [p.label for p in predictions] == [CLASSES[i] for i in _timm_probabilities(model, sample_pixels[:4]).argmax(1)]
    report = edgeskin.verify(result, data=images, split="val", out=tmp_path / "report")
    (check,) = report.checks
    assert check.parity.n_images == 20 and check.parity.passed and (tmp_path / "report" / "report.json").is_file()
    with pytest.raises(edgeskin.EdgeskinError, match="a generic module carries no class names or normalization: pass classes="):
        edgeskin.convert(torch.nn.Linear(3, 3), out=tmp_path / "x")  # any module is taken (tests/test_generic_module.py)
