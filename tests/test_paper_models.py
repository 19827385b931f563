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
