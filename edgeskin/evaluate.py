"""Run a model over preprocessed images and score it."""

from __future__ import annotations

import numpy as np
import torch

from edgeskin.metrics import ClassificationReport, classification_report
from edgeskin.models import SkinViT


@torch.no_grad()
def predict_logits(model: SkinViT, images: np.ndarray, exit: int | None = None, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """uint8 (N,H,W,3) images -> float32 logits (N, classes), in eval mode, in batches."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="eval", unit="batch", disable=None if progress else True, leave=False):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2)
        chunks.append(model(batch.float(), exit=exit).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(chunks) if chunks else np.zeros((0, model.config.num_classes), np.float32)


def evaluate(model: SkinViT, images: np.ndarray, labels: np.ndarray, exit: int | None = None, progress: bool = False) -> ClassificationReport:
    logits = predict_logits(model, images, exit=exit, progress=progress)
    return classification_report(labels, logits.argmax(axis=1), model.config.class_names)
