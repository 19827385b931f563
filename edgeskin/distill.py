"""SkinDistilViT distillation: a student made of chosen teacher blocks, trained with the paper's loss.

As the authors' code computes it (Longman-Stan/SkinDistilVit, distillation/distiller.py):
loss = kd * T^2 * KL(softmax(t/T) || softmax(s/T)) + ce * CE(s, y) + mse * SSE(s, t) / batch,
T = 2, kd = 0.5, ce = 1.0, mse = 0.25, where KL is averaged over the batch and SSE sums the squared
logit differences over batch and classes (so the MSE term is 8x a per-element mean with 8 classes).
Every head of a multi-exit student gets that loss against the teacher's final logits, so each exit
is distilled, not only the last.

The UNK logit: the authors' models have 9 outputs (ISIC 2019's columns, UNK last) and their KL and
MSE run over all 9, though UNK is never a label. edgeskin's models have the 8 real classes only
(importers drop the UNK row: edgeskin.hf_import), so both terms run over 8 logits; the teacher's
softmax is taken over those 8, i.e. renormalized without the mass the authors' teacher put on UNK.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgeskin.models import SkinViT, build_model
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.train import Objective


@dataclass(frozen=True)
class DistillWeights:
    temperature: float = 2.0
    kd: float = 0.5
    ce: float = 1.0
    mse: float = 0.25


def parse_blocks(spec: str, teacher_depth: int) -> list[int]:
    """'first6' | 'last6' | 'even6' (spread evenly) | '0,1,2,3,4,5' (0-based teacher blocks)."""
    spec = spec.strip().lower()
    for kind in ("first", "last", "even"):
        if spec.startswith(kind):
            try:
                n = int(spec[len(kind):])
            except ValueError:
                break
            if not 1 <= n <= teacher_depth:
                raise EdgeskinError(f"--blocks {spec}: teacher has {teacher_depth} blocks")
            if kind == "first":
                return list(range(n))
            if kind == "last":
                return list(range(teacher_depth - n, teacher_depth))
            return sorted({round(i * (teacher_depth - 1) / max(1, n - 1)) for i in range(n)})
    try:
        blocks = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise EdgeskinError(f"--blocks {spec}: expected first6, last6, even6 or a list like 0,2,4") from None
    if not blocks or any(not 0 <= b < teacher_depth for b in blocks) or len(set(blocks)) != len(blocks):
        raise EdgeskinError(f"--blocks {spec}: need distinct block numbers in 0..{teacher_depth - 1}")
    return blocks


def student_from_teacher(teacher: SkinViT, blocks: Sequence[int], every_exit: bool = False) -> SkinViT:
    """Student of len(blocks) blocks: embeddings, final norm and head copied, blocks taken in order;
    every_exit adds an exit head after each of its blocks (new heads start from random weights)."""
    config = teacher.config.with_depth(len(blocks))
    config = config.with_every_exit() if every_exit else config
    student = build_model(config)
    tv, sv = teacher.vit, student.vit
    for name in ("patch_embed", "norm", "head"):
        getattr(sv, name).load_state_dict(getattr(tv, name).state_dict())
    sv.cls_token.data.copy_(tv.cls_token.data)
    sv.pos_embed.data.copy_(tv.pos_embed.data)
    for target, source in zip(sv.blocks, blocks, strict=True):
        target.load_state_dict(copy.deepcopy(tv.blocks[source].state_dict()))
    for key, head in student.exits.items():  # exit k of the student sits after teacher block blocks[k-1]
        teacher_exit = str(blocks[int(key) - 1] + 1)
        if teacher_exit in teacher.exits:
            head.load_state_dict(teacher.exits[teacher_exit].state_dict())
    return student


def distillation_terms(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
                       ce_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The three unweighted terms of the paper's loss for one head: kl (T^2 * batch-mean KL), ce, mse (sum / batch)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1), reduction="batchmean") * t * t
    return {"kl": kl, "ce": F.cross_entropy(student, labels, weight=ce_weights),
            "mse": F.mse_loss(student, teacher, reduction="sum") / student.shape[0]}


def distillation_objective(teacher: SkinViT, weights: DistillWeights, ce_weights: torch.Tensor | None = None) -> Objective:
    """The paper's loss on every head of the student, each against the teacher's final logits."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def objective(outputs, labels, pixels):
        if next(teacher.parameters()).device != pixels.device:  # follows the student (e.g. cuda:LOCAL_RANK)
            teacher.to(pixels.device)
        with torch.no_grad():
            teacher_logits = teacher(pixels).float()
        w = None if ce_weights is None else ce_weights.to(labels.device)
        loss = 0.0
        for logits in outputs.values():
            terms = distillation_terms(logits.float(), teacher_logits, labels, weights.temperature, w)
            loss = loss + weights.kd * terms["kl"] + weights.ce * terms["ce"] + weights.mse * terms["mse"]
        return loss

    return objective
