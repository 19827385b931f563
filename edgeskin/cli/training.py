"""`edgeskin train`, `distill` and `cascade`: the training commands."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from edgeskin.runtime.errors import EdgeskinError


def _add_training_args(p: argparse.ArgumentParser, epochs: int) -> None:
    p.add_argument("--out", required=True, type=Path, help="run folder: best.safetensors, last.safetensors, log.jsonl")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16 autocast (about 1.5x faster on AVX512-BF16 CPUs)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--class-weights", choices=("none", "balanced"), default="none", help="balanced: inverse-frequency CE weights")
    p.add_argument("--drop-path", type=float, default=0.1)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--dump-rank-weights", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help="dataset (default: $EDGESKIN_DATA, else ../shared/data/isic-public beside a checkout, else the bundled CC0 set)")


def _add_distill_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, help="teacher checkpoint")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha-kd", type=float, default=0.5, help="weight of T^2 * KL(teacher || student)")
    p.add_argument("--alpha-ce", type=float, default=1.0, help="weight of cross-entropy with the labels")
    p.add_argument("--alpha-mse", type=float, default=0.25, help="weight of MSE between logits")
    _add_training_args(p, epochs=30)


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train a teacher (or any registry model) with cross-entropy")
    p.add_argument("--arch", default="skindistilvit-b12", help="registry name, e.g. skindistilvit-ti12")
    p.add_argument("--init", help="start from this checkpoint instead of random weights")
    _add_training_args(p, epochs=30)

    p = sub.add_parser("distill", help="distill a student made of chosen teacher blocks")
    p.add_argument("--blocks", default="first6", help="teacher blocks for the student: first6, last6, even6 or 0,1,2,... (0-based)")
    _add_distill_args(p)

    p = sub.add_parser("cascade", help="cascading distillation: depth-1 blocks from the teacher, then each from the last")
    p.add_argument("--down-to", type=int, default=1, help="smallest depth to distill (default 1)")
    _add_distill_args(p)


def _threads(count: int | None) -> None:
    import os

    import torch

    torch.set_num_threads(count or os.cpu_count() or 1)


def _device(requested: str | None) -> str:
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise EdgeskinError(f"--device {requested}: CUDA is not available on this machine")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def _image_sets(args, config):
    from dataclasses import replace

    from edgeskin.data import load_images, open_dataset
    from edgeskin.image_sources import describe, resolve_images
    from edgeskin.train import ImageSet

    source = resolve_images(args.data)
    root = source.label
    train = open_dataset(source, args.train_split, config.class_names)
    val = open_dataset(source, args.val_split, config.class_names)
    cache = replace(config.preprocess, size=round(config.img_size * 450 / 400))  # paper's 400-of-450 crop
    print(describe("training", len(train), train.name), file=sys.stderr, flush=True)
    print(describe("validation", len(val), val.name), file=sys.stderr, flush=True)
    return root, ImageSet(load_images(train, cache), train.labels), ImageSet(load_images(val, config.preprocess), val.labels)


def _settings(args):
    from edgeskin.train import TrainSettings

    return TrainSettings(out_dir=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, seed=args.seed,
                         precision=args.precision, device=_device(args.device), max_steps=args.max_steps,
                         resume=args.resume, dump_rank_weights=args.dump_rank_weights)


def _provenance(args, root, **extra) -> dict:
    import torch

    return {"command": "edgeskin " + shlex.join(sys.argv[1:]), "data": str(root), "train_split": args.train_split,
            "val_split": args.val_split, "seed": args.seed, "torch": torch.__version__, **extra}


def _ce_weights(args, labels, num_classes):
    from edgeskin.train import class_weights

    return class_weights(labels, num_classes) if args.class_weights == "balanced" else None


def cmd_train(args) -> int:
    import torch

    from edgeskin.model_loading import load_checkpoint
    from edgeskin.models import build_model, config_for
    from edgeskin.train import cross_entropy_objective, fit

    _threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_checkpoint(args.init).model if args.init else build_model(config_for(args.arch), drop_path_rate=args.drop_path)
    root, train, val = _image_sets(args, model.config)
    objective = cross_entropy_objective(_ce_weights(args, train.labels, model.config.num_classes))
    result = fit(model, train, val, objective, _settings(args), _provenance(args, root, arch=model.config.arch))
    print(f"best val BMA {result.best_val_bma:.4f} at epoch {result.best_epoch}: {result.best_path}")
    return 0


def _distill_step(args, teacher, teacher_sha256: str, blocks: list[int], data, out_dir: Path):
    """One distillation: a student of the chosen teacher blocks, trained with the paper's loss."""
    from edgeskin.distill import DistillWeights, distillation_objective, student_from_teacher
    from edgeskin.train import fit

    root, train, val = data
    student = student_from_teacher(teacher, blocks)
    weights = DistillWeights(args.temperature, args.alpha_kd, args.alpha_ce, args.alpha_mse)
    objective = distillation_objective(teacher, weights, _ce_weights(args, train.labels, student.config.num_classes))
    provenance = _provenance(args, root, arch=student.config.arch, teacher_sha256=teacher_sha256,
                             teacher_blocks=blocks, distill_weights=weights.__dict__)
    settings = _settings(args)
    settings.out_dir = out_dir
    result = fit(student, train, val, objective, settings, provenance)
    print(f"{student.config.arch}: best val BMA {result.best_val_bma:.4f} at epoch {result.best_epoch}: {result.best_path}")
    return result


def cmd_distill(args) -> int:
    import torch

    from edgeskin.distill import parse_blocks
    from edgeskin.model_loading import load_checkpoint

    _threads(args.threads)
    torch.manual_seed(args.seed)
    loaded = load_checkpoint(args.teacher)
    blocks = parse_blocks(args.blocks, loaded.config.depth)
    _distill_step(args, loaded.model, loaded.source_sha256, blocks, _image_sets(args, loaded.config), args.out)
    return 0


def cmd_cascade(args) -> int:
    """Cascading distillation: model K starts from the first K blocks of model K+1 and is distilled from it."""
    import torch

    from edgeskin.model_loading import load_checkpoint

    _threads(args.threads)
    torch.manual_seed(args.seed)
    loaded = load_checkpoint(args.teacher)
    if not 1 <= args.down_to < loaded.config.depth:
        raise EdgeskinError(f"--down-to {args.down_to}: must be between 1 and {loaded.config.depth - 1} for a {loaded.config.depth}-block teacher")
    data = _image_sets(args, loaded.config)
    teacher, teacher_sha = loaded.model, loaded.source_sha256
    for depth in range(loaded.config.depth - 1, args.down_to - 1, -1):
        result = _distill_step(args, teacher, teacher_sha, list(range(depth)), data, args.out / f"depth{depth:02d}")
        next_teacher = load_checkpoint(result.best_path)
        teacher, teacher_sha = next_teacher.model, next_teacher.source_sha256
    return 0


