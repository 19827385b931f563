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
    mse = ((student_logits - teacher_logits) ** 2).sum() / 2  # the authors' MSELoss(reduction="sum") / batch
    expected = 0.5 * t * t * kl + 1.0 * ce + 0.25 * mse
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-6)


TEACHER = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3]])
STUDENT = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, -0.5]])
LABELS = torch.tensor([0, 1])


def test_each_term_of_the_loss_by_hand():
    """Each term alone against arithmetic written out for these 2x3 logits (T = 2)."""
    from edgeskin.distill import distillation_terms

    terms = distillation_terms(STUDENT, TEACHER, LABELS, 2.0)
    # mse: squared differences 1, 0.25, 1 and 0.01, 0.25, 0.64 -> sum 3.15, over a batch of 2
    assert math.isclose(terms["mse"].item(), 3.15 / 2, rel_tol=1e-6)
    # ce: -log softmax([1, 1, 0])[0] and -log softmax([0, 2, -0.5])[1]
    ce = (-math.log(math.e / (2 * math.e + 1)) - math.log(math.e ** 2 / (1 + math.e ** 2 + math.e ** -0.5))) / 2
    assert math.isclose(terms["ce"].item(), ce, rel_tol=1e-6)
    # kl: T^2 * mean over the batch of sum p_t * (log p_t - log p_s), at T = 2
    kl = 0.0
    for s_row, t_row in zip(STUDENT.tolist(), TEACHER.tolist(), strict=True):
        p_t = [math.exp(v / 2) / sum(math.exp(u / 2) for u in t_row) for v in t_row]
        p_s = [math.exp(v / 2) / sum(math.exp(u / 2) for u in s_row) for v in s_row]
        kl += sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s, strict=True))
    assert math.isclose(terms["kl"].item(), 4 * kl / 2, rel_tol=1e-5)


@pytest.mark.parametrize("kd, ce, mse", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 1.0, 0.25)])
def test_weights_scale_their_own_term_only(kd, ce, mse):
    from edgeskin.distill import distillation_terms

    terms = distillation_terms(STUDENT, TEACHER, LABELS, 2.0)
    objective = distillation_objective(FixedTeacher(TEACHER), DistillWeights(2.0, kd, ce, mse))
    loss = objective({3: STUDENT}, LABELS, torch.zeros(2, 3, 4, 4))
    assert math.isclose(loss.item(), (kd * terms["kl"] + ce * terms["ce"] + mse * terms["mse"]).item(), rel_tol=1e-6)


def test_every_exit_is_distilled_from_the_teachers_final_logits():
    from edgeskin.distill import distillation_terms

    early = torch.tensor([[0.2, 0.1, 0.0], [0.0, 0.3, 0.1]])
    objective = distillation_objective(FixedTeacher(TEACHER), DistillWeights())
    loss = objective({1: early, 3: STUDENT}, LABELS, torch.zeros(2, 3, 4, 4))

    def one(logits):
        terms = distillation_terms(logits, TEACHER, LABELS, 2.0)
        return 0.5 * terms["kl"] + 1.0 * terms["ce"] + 0.25 * terms["mse"]

    assert math.isclose(loss.item(), (one(early) + one(STUDENT)).item(), rel_tol=1e-6)


def test_paper_preset_fills_what_was_not_given_and_flags_win():
    from edgeskin.presets import apply_preset

    given = {"lr": None, "batch_size": None, "weight_decay": None, "warmup_epochs": None, "clip_grad": None,
             "drop_path": None, "class_weights": None, "epochs": None}
    paper = apply_preset(given, "paper", "distill")
    assert paper == {"lr": 2e-4, "batch_size": 64, "weight_decay": 0.0, "warmup_epochs": 0.0, "clip_grad": 1.0,
                     "drop_path": 0.0, "class_weights": "none", "epochs": 20}
    assert apply_preset(given, "paper", "train")["epochs"] == 60
    assert apply_preset({**given, "lr": 1e-3, "epochs": 5}, "paper", "train") | {} == {**paper, "lr": 1e-3, "epochs": 5}
    own = apply_preset(given, "edgeskin", "train")
    assert (own["weight_decay"], own["warmup_epochs"], own["clip_grad"], own["drop_path"]) == (0.05, 1.0, None, 0.1)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_clipping_bounds_the_gradient_norm(tmp_path, clip):
    """--clip-grad (the paper preset's 1.0) reaches the optimizer step: the gradients the step used
    (left on the parameters after it) have a total norm of at most 1.0, and far more without it."""
    from edgeskin.train import ImageSet, TrainSettings, fit

    rng = np.random.default_rng(0)
    images = ImageSet(rng.integers(0, 256, (8, 224, 224, 3), dtype=np.uint8), np.arange(8) % 8)
    model = perturbed_model("skindistilvit-ti1")

    def huge(outputs, labels, pixels):
        return 1e4 * sum(v.float().pow(2).sum() for v in outputs.values())

    settings = TrainSettings(out_dir=tmp_path, epochs=1, batch_size=8, lr=1e-3, weight_decay=0.0, warmup_epochs=0.0,
                             max_steps=1, clip_grad=clip)
    fit(model, images, images, huge, settings, {})
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])).item()
    assert norm <= 1.0 + 1e-4 if clip else norm > 100.0


def test_every_exit_student_has_a_head_after_each_block():
    teacher = perturbed_model("skindistilvit-ti3")
    student = student_from_teacher(teacher, [0, 1], every_exit=True)
    assert student.config.arch == "skindistilvit-ti2-exits" and student.config.exit_blocks == (1, 2)
    pixels = torch.rand(1, 3, 224, 224) * 255
    with torch.no_grad():
        assert set(student(pixels, all_exits=True)) == {1, 2}
        # the final head and block weights are the teacher's
        assert torch.equal(student.vit.head.weight, teacher.vit.head.weight)
