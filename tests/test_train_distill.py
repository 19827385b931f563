"""Training loop, resume, the student-from-teacher construction and the paper's KD loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeskin.distill import DistillWeights, distillation_objective, parse_blocks, student_from_teacher
from edgeskin.model_loading import load_checkpoint
from edgeskin.runtime import EdgeskinError
from edgeskin.train import ImageSet, TrainSettings, class_weights, cross_entropy_objective, fit
from tests.conftest import perturbed_model


@pytest.fixture
def image_sets(sample_pixels):
    labels = np.array([0] * 8 + [1] * 8)
    return ImageSet(sample_pixels, labels), ImageSet(sample_pixels[::2], labels[::2])


def test_fit_writes_checkpoints_and_resumes(tmp_path, image_sets):
    train, val = image_sets
    model = perturbed_model("skindistilvit-ti1")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = TrainSettings(out_dir=tmp_path, epochs=2, batch_size=8, lr=1e-3, warmup_epochs=0.5)
    result = fit(model, train, val, cross_entropy_objective(), settings, {"test": True})
    assert result.best_path.is_file() and result.last_path.is_file() and len(result.history) == 2
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    loaded = load_checkpoint(result.last_path)
    assert loaded.provenance["epoch"] == 2 and "val_bma" in loaded.provenance
    # resume: a third epoch continues from the saved step count and history
    settings.epochs, settings.resume = 3, True
    resumed = fit(perturbed_model("skindistilvit-ti1"), train, val, cross_entropy_objective(), settings, {})
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.history[-1]["step"] == 6


def test_training_reduces_loss_on_a_fixed_batch(image_sets):
    train, _ = image_sets
    model = perturbed_model("skindistilvit-ti1").train()
    x = torch.from_numpy(train.images).permute(0, 3, 1, 2).float()
    y = torch.from_numpy(train.labels)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    objective = cross_entropy_objective()
    first = objective(model.forward_exits(x), y, x).item()
    for _ in range(8):
        loss = objective(model.forward_exits(x), y, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.8


def test_class_weights_balance_thin_classes():
    w = class_weights(np.array([0] * 30 + [1] * 10), 3)
    assert w[2] == 0 and math.isclose(float(w[0] * 30), float(w[1] * 10), rel_tol=1e-6)


def test_student_takes_chosen_teacher_blocks(sample_pixels):
    teacher = perturbed_model("skindistilvit-ti4")
    student = student_from_teacher(teacher, [0, 2])
    assert student.config.arch == "skindistilvit-ti2" and student.config.depth == 2
    x = torch.from_numpy(sample_pixels[:2]).permute(0, 3, 1, 2).float()
    with torch.no_grad():  # independent path: teacher's own modules, blocks 0 and 2 only
        t = teacher.vit
        tokens = t._pos_embed(t.patch_embed(teacher.normalize(x)))
        tokens = t.blocks[2](t.blocks[0](tokens))
        expected = t.head(t.norm(tokens)[:, 0])
        torch.testing.assert_close(student(x), expected)


def test_parse_blocks():
    assert parse_blocks("first6", 12) == [0, 1, 2, 3, 4, 5]
    assert parse_blocks("last2", 12) == [10, 11]
    assert parse_blocks("even4", 12) == [0, 4, 7, 11]
    assert parse_blocks("0,3,5", 12) == [0, 3, 5]
    with pytest.raises(EdgeskinError, match="need distinct block numbers"):
        parse_blocks("0,12", 12)


class FixedTeacher(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, pixels):
        return self.logits


def test_kd_loss_matches_the_paper_formula():
    teacher_logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3]])
    student_logits = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, -0.5]])
    labels = torch.tensor([0, 1])
    objective = distillation_objective(FixedTeacher(teacher_logits), DistillWeights())
    loss = objective({6: student_logits}, labels, torch.zeros(2, 3, 4, 4))
    t = 2.0
    p_t = F.softmax(teacher_logits / t, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(student_logits / t, -1))).sum(-1).mean()
    ce = -F.log_softmax(student_logits, -1)[[0, 1], labels].mean()
    mse = ((student_logits - teacher_logits) ** 2).mean()
    expected = 0.5 * t * t * kl + 1.0 * ce + 0.25 * mse
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-6)


def test_distill_from_python_with_typed_options(tmp_path, bundled_dir):
    """edgeskin.training_setup is what `edgeskin distill` runs; it takes options, not parsed flags."""
    from edgeskin.checkpoint import save_checkpoint
    from edgeskin.training_setup import TrainOptions, distill

    teacher = save_checkpoint(perturbed_model("skindistilvit-ti2"), tmp_path / "teacher.safetensors")
    settings = TrainSettings(out_dir=tmp_path / "student", epochs=1, batch_size=8, max_steps=1)
    options = TrainOptions(settings, data=bundled_dir, train_split="val", val_split="val", balanced=True, threads=1,
                           command="from a test")
    messages = []
    result = distill(options, teacher, "last1", DistillWeights(temperature=3.0), report=messages.append)
    assert result.arch == "skindistilvit-ti1" and result.best_path.parent == tmp_path / "student"
    assert any(m.startswith("training: ") for m in messages)
    provenance = load_checkpoint(result.best_path).provenance
    assert provenance["teacher_blocks"] == [1] and provenance["command"] == "from a test"
    assert provenance["distill_weights"]["temperature"] == 3.0 and provenance["settings"]["device"] == "cpu"
