"""The training loop behind `edgeskin train` and `edgeskin distill`.

Single process on CPU/CUDA, or one process per rank under `torchrun` (DDP: gloo on CPU, nccl on
GPU). Each epoch writes `last.safetensors` + `train_state.pt` (resume with --resume) and keeps the
best validation-BMA weights in `best.safetensors`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from edgeskin.augment import AugmentConfig, augment_batch
from edgeskin.checkpoint import save_checkpoint
from edgeskin.evaluate import evaluate
from edgeskin.models import SkinViT
from edgeskin.runtime.errors import EdgeskinError

# outputs of every head (block -> logits), labels, augmented pixels -> loss
Objective = Callable[[dict[int, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainSettings:
    out_dir: Path
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    seed: int = 42
    precision: str = "fp32"  # or "bf16" (autocast)
    device: str | None = "cpu"  # None: cuda when available
    max_steps: int | None = None  # stop early (smoke tests, DDP test)
    resume: bool = False
    clip_grad: float | None = None  # max gradient norm (the authors' Trainer clipped at 1.0)


@dataclass
class TrainResult:
    arch: str  # the model trained
    best_path: Path
    last_path: Path
    best_val_bma: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)


@dataclass
class ImageSet:
    """Preprocessed images (uint8 N,H,W,3) with integer labels."""

    images: np.ndarray
    labels: np.ndarray


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (mean 1 over present classes): thin classes count as much as big ones."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def cross_entropy_objective(weights: torch.Tensor | None = None) -> Objective:
    """Sum of cross-entropies over every head (the paper's multi-exit loss; one head = plain CE)."""

    def objective(outputs, labels, pixels):
        w = None if weights is None else weights.to(labels.device)
        return sum(F.cross_entropy(logits.float(), labels, weight=w) for logits in outputs.values())

    return objective


class _Distributed:
    """Rank/world facts; DDP is on when torchrun set WORLD_SIZE > 1."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        """Every rank waits for the others (rank 0 evaluates and saves after the last step) before
        the group goes; torn down while a peer still works, gloo can hang in its destructor."""
        if self.enabled and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names and raw bytes: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _rank_digests(model: SkinViT, ddp: _Distributed) -> list[str] | None:
    """Under DDP, every rank's weights_digest (every rank must call this). Gradients are all-reduced,
    so the ranks must agree; if they do not, the run stops instead of saving one rank's drift."""
    if not ddp.enabled:
        return None
    mine = torch.frombuffer(bytearray.fromhex(weights_digest(model.state_dict())), dtype=torch.uint8)
    gathered = [torch.empty_like(mine) for _ in range(ddp.world)]
    dist.all_gather(gathered, mine)  # a plain tensor collective: no pickling, no helper threads
    digests = [bytes(t.tolist()).hex() for t in gathered]
    if len(set(digests)) > 1:
        raise RuntimeError(f"DDP ranks hold different weights: {digests}")
    return digests


def _adamw(model: SkinViT, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms, position embedding, CLS token)."""
    decayed, plain = [], []
    for name, param in model.named_parameters():
        is_matrix = param.ndim > 1 and "pos_embed" not in name and "cls_token" not in name
        (decayed if is_matrix else plain).append(param)
    groups = [{"params": decayed, "weight_decay": settings.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.lr)


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * max(0.0, (total - step) / max(1, total - warmup))  # linear decay, as in the paper


def _device(requested: str | None) -> str:
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise EdgeskinError(f"--device {requested}: CUDA is not available on this machine")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def fit(model: SkinViT, train: ImageSet, val: ImageSet, objective: Objective, settings: TrainSettings, provenance: dict) -> TrainResult:
    """Train `model` in place; returns where the best and last weights were written."""
    from tqdm import tqdm

    settings = replace(settings, device=_device(settings.device))
    ddp = _Distributed(settings.device)
    device = torch.device(settings.device)
    if ddp.enabled and device.type == "cuda":  # one GPU per rank
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    model.to(device).train()
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp.enabled else model
    optimizer = _adamw(model, settings)
    steps_per_epoch = math.ceil(len(train.labels) / settings.batch_size)
    total_steps = settings.max_steps or steps_per_epoch * settings.epochs
    warmup = max(1, int(settings.warmup_epochs * steps_per_epoch)) if not settings.max_steps else 1
    state_path, last_path, best_path = out / "train_state.pt", out / "last.safetensors", out / "best.safetensors"
    start_epoch, step, best_bma, best_epoch, history = 0, 0, -1.0, -1, []
    if settings.resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        from edgeskin.checkpoint import read_safetensors

        model.load_state_dict(read_safetensors(last_path)[0])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step, best_bma, best_epoch = state["epoch"], state["step"], state["best_bma"], state["best_epoch"]
        history = json.loads(state["history"])
        if ddp.is_main:
            print(f"resuming {out} after epoch {start_epoch} (best val BMA {best_bma:.4f})", file=sys.stderr)
    generator = torch.Generator().manual_seed(settings.seed * 1000 + ddp.rank + start_epoch)
    images = torch.from_numpy(train.images).permute(0, 3, 1, 2)  # uint8 N,3,S,S (a view)
    labels = torch.from_numpy(train.labels)
    augment = AugmentConfig(output_size=model.config.img_size, cache_size=train.images.shape[1])
    amp = settings.precision == "bf16"
    for epoch in range(start_epoch, settings.epochs):
        if settings.max_steps and step >= settings.max_steps:
            break
        began, losses = time.time(), []
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(settings.seed + epoch))
        batches = order.split(settings.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", disable=None if ddp.is_main else True, leave=False)
        for batch in bar:
            if settings.max_steps and step >= settings.max_steps:
                break
            if len(batch) < ddp.world:  # a tail too small to give every rank an image
                continue
            mine = batch[ddp.rank :: ddp.world]  # every rank takes its share of the same global batch
            pixels = augment_batch(images[mine], augment, generator).to(device)
            target = labels[mine].to(device)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total_steps, warmup, settings.lr)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                outputs = net(pixels, all_exits=True)  # through DDP's wrapper, so gradients sync
                loss = objective(outputs, target, pixels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad)
            optimizer.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        record = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - began, 1)}
        digests = _rank_digests(model, ddp)
        if ddp.is_main:
            report = evaluate(model, val.images, val.labels)
            record.update(val_bma=report.bma, val_accuracy=report.accuracy)
            history.append(record)
            meta = {**provenance, "epoch": epoch + 1, "val_bma": report.bma, "settings": _settings_dict(settings), "history": history}
            if digests:  # what every rank held when these weights were saved
                meta["rank_weights_sha256"] = digests
            save_checkpoint(model, last_path, meta)
            if report.bma > best_bma:
                best_bma, best_epoch = report.bma, epoch + 1
                save_checkpoint(model, best_path, {**meta, "selected_on": "val_bma"})
            torch.save({"optimizer": optimizer.state_dict(), "epoch": epoch + 1, "step": step, "best_bma": best_bma,
                        "best_epoch": best_epoch, "history": json.dumps(history)}, state_path)
            with open(out / "log.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            print(f"epoch {epoch + 1}: loss {record['train_loss']:.4f}  val BMA {report.bma:.4f}  acc {report.accuracy:.4f}  ({record['seconds']} s)", file=sys.stderr)
    del net  # the DDP wrapper's reducer holds the process group: it goes first
    ddp.close()
    return TrainResult(model.config.arch, best_path, last_path, best_bma, best_epoch, history)


def _settings_dict(settings: TrainSettings) -> dict:
    data = asdict(settings)
    data["out_dir"] = str(settings.out_dir)
    return data
