"""Paper-size architectures (ViT-B/16 teacher, 43M student): slow, so `make test-slow`."""

from __future__ import annotations

import pytest
import torch

from edgeskin.checkpoint import load_checkpoint, save_checkpoint
from edgeskin.distill import student_from_teacher
from tests.conftest import perturbed_model


@pytest.mark.slow
def test_b12_teacher_to_b6_student_roundtrip(tmp_path, sample_pixels):
    teacher = perturbed_model("skindistilvit-b12")
    student = student_from_teacher(teacher, list(range(6)))
    assert student.config.arch == "skindistilvit-b6"
    assert abs(sum(p.numel() for p in student.parameters()) / 1e6 - 43.3) < 0.1
    path = save_checkpoint(student, tmp_path / "b6.safetensors")
    loaded = load_checkpoint(path)
    x = torch.from_numpy(sample_pixels[:4]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        assert torch.equal(loaded.model(x), student(x))
        # the student's first six blocks are the teacher's: the CLS token after block 6 agrees
        torch.testing.assert_close(student.forward_cls_tokens(x)[5], teacher.forward_cls_tokens(x)[5])


@pytest.mark.slow
def test_b6_student_converts_through_every_shipped_recipe(tmp_path, real_data_dir):
    """The paper's 43M student (seeded weights) through fp32, fp16, dynamic and int8-mixed TFLite."""
    import json

    from tests.conftest import perturbed_model as seeded
    from tests.test_cli import run_cli

    if real_data_dir.name == "samples":
        pytest.skip("platform fact: int8 calibration needs ../shared/data/isic-public beside the checkout")
    ckpt = save_checkpoint(seeded("skindistilvit-b6"), tmp_path / "b6.safetensors")
    done = run_cli("convert", ckpt, "--recipes", "fp32,fp16,dynamic,int8-mixed", "--data", real_data_dir, "--out", tmp_path / "dist")
    manifest = json.loads((tmp_path / "dist" / "manifest.json").read_text())
    by_recipe = {a["recipe"]: a for a in manifest["artifacts"]}
    assert set(by_recipe) == {"fp32", "fp16", "dynamic", "int8-mixed"}
    assert by_recipe["fp32"]["verdict"] == "pass" and by_recipe["fp32"]["parity"]["agreement"] == 1.0
    assert by_recipe["fp32"]["bytes"] > 170e6  # 43M float32 parameters
    for recipe, art in by_recipe.items():
        assert art["verdict"] == "pass", (recipe, art["failures"])
    assert done.returncode == 0, done.stderr
