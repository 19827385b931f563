"""Run a model over preprocessed images and score it; or a checkpoint over a split (`edgeskin eval`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgeskin.checkpoint import LoadedModel
from edgeskin.contract import StatedContract
from edgeskin.data import load_images, open_dataset
from edgeskin.environment import use_torch_threads
from edgeskin.image_sources import resolve_images
from edgeskin.metrics import ClassificationReport, classification_report
from edgeskin.model_loading import load_checkpoint
from edgeskin.models import SkinViT


@torch.no_grad()
def predict_logits(model: SkinViT, images: np.ndarray, exit: int | None = None, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """uint8 (N,H,W,3) images -> float32 logits (N, classes), in eval mode, in batches."""
    from edgeskin.progress import progress_iter

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    starts = range(0, len(images), batch_size)
    for start in progress_iter(starts, f"PyTorch on {len(images)} images" + (f" (exit {exit})" if exit else ""), progress):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2)
        chunks.append(model(batch.float(), exit=exit).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(chunks) if chunks else np.zeros((0, model.config.num_classes), np.float32)


def evaluate(model: SkinViT, images: np.ndarray, labels: np.ndarray, exit: int | None = None, progress: bool = False) -> ClassificationReport:
    logits = predict_logits(model, images, exit=exit, progress=progress)
    return classification_report(labels, logits.argmax(axis=1), model.config.class_names)


@dataclass(frozen=True)
class CheckpointEvaluation:
    """One checkpoint scored on one split, at one exit (and, when asked, at every exit)."""

    checkpoint: str  # as given
    loaded: LoadedModel
    dataset: str
    exit: int
    report: ClassificationReport
    per_exit: dict[int, ClassificationReport] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "checkpoint_sha256": self.loaded.source_sha256, "data": self.dataset,
                "exit": self.exit, **self.report.to_dict(), "per_exit_bma": {str(k): v.bma for k, v in self.per_exit.items()}}


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path | None = None, split: str | None = "test",
                        stated: StatedContract | None = None, exit: int | None = None, all_exits: bool = False,
                        progress: bool = False) -> CheckpointEvaluation:
    """Load a checkpoint and score it on a split of `data` (the default image rule when None)."""
    use_torch_threads()
    source = resolve_images(data)
    loaded = load_checkpoint(checkpoint, stated=stated)
    dataset = open_dataset(source, split, loaded.config.class_names)
    images = load_images(dataset, loaded.config.preprocess)
    report = evaluate(loaded.model, images, dataset.labels, exit=exit, progress=progress)
    per_exit = {block: evaluate(loaded.model, images, dataset.labels, exit=block) for block in loaded.config.exit_blocks} if all_exits else {}
    return CheckpointEvaluation(str(checkpoint), loaded, dataset.name, exit or loaded.config.depth, report, per_exit)
