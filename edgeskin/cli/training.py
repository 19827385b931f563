"""`edgeskin train`, `distill` and `cascade`: the training commands."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields
from pathlib import Path


def _add_training_args(p: argparse.ArgumentParser, command: str) -> None:
    from edgeskin.presets import PRESETS

    own, paper = PRESETS["edgeskin"], PRESETS["paper"]

    def default(name: str) -> str:  # flags default to None, so a preset can tell given from not given
        mine, theirs = getattr(own, name), getattr(paper, name)
        if name == "epochs":
            mine, theirs = mine[command], theirs[command]
        return f"default {mine}; --preset paper: {theirs}"

    p.add_argument("--out", required=True, type=Path, help="run folder: best.safetensors, last.safetensors, log.jsonl")
    p.add_argument("--preset", choices=sorted(PRESETS), default="edgeskin",
                   help="training defaults: edgeskin's, or the authors' (paper: AdamW 2e-4, batch 64, linear decay, no warm-up, "
                        "no weight decay, clipping at 1.0, no drop-path); flags given here override it")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--epochs", type=int, default=None, help=default("epochs"))
    p.add_argument("--batch-size", type=int, default=None, help=default("batch_size"))
    p.add_argument("--lr", type=float, default=None, help=default("lr"))
    p.add_argument("--weight-decay", type=float, default=None, help=default("weight_decay"))
    p.add_argument("--warmup-epochs", type=float, default=None, help=default("warmup_epochs"))
    p.add_argument("--clip-grad", type=float, default=None, help="max gradient norm (" + default("clip_grad") + ")")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16 autocast (about 1.5x faster on AVX512-BF16 CPUs)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--class-weights", choices=("none", "balanced"), default=None,
                   help="balanced: inverse-frequency CE weights (" + default("class_weights") + ")")
    p.add_argument("--drop-path", type=float, default=None, help=default("drop_path"))
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--data", help="dataset (default: $EDGESKIN_DATA, else ../shared/data/isic-public beside a checkout, else the bundled CC0 set)")
    p.set_defaults(training_command=command)


def _add_distill_args(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--teacher", required=True, help="teacher checkpoint")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha-kd", type=float, default=0.5, help="weight of T^2 * KL(teacher || student)")
    p.add_argument("--alpha-ce", type=float, default=1.0, help="weight of cross-entropy with the labels")
    p.add_argument("--alpha-mse", type=float, default=0.25, help="weight of MSE between logits")
    _add_training_args(p, command)


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train a teacher (or any registry model) with cross-entropy")
    p.add_argument("--arch", default="skindistilvit-b12", help="registry name, e.g. skindistilvit-ti12")
    p.add_argument("--init", help="start from this checkpoint instead of random weights")
    _add_training_args(p, "train")

    p = sub.add_parser("distill", help="distill a student made of chosen teacher blocks")
    p.add_argument("--blocks", default="first6", help="teacher blocks for the student: first6, last6, even6 or 0,1,2,... (0-based)")
    p.add_argument("--every-exit", action="store_true", help="an exit head after every block of the student, each distilled "
                   "(for anytime inference: edgeskin convert --exits all)")
    _add_distill_args(p, "distill")

    p = sub.add_parser("cascade", help="cascading distillation: the teacher's depth distilled from it, then each depth from the last")
    p.add_argument("--down-to", type=int, default=1, help="smallest depth to distill (default 1)")
    _add_distill_args(p, "cascade")


def _with_preset(args) -> None:
    """Flags not given take the preset's value (edgeskin.presets)."""
    from edgeskin.presets import TrainingDefaults, apply_preset

    names = [f.name for f in fields(TrainingDefaults)]
    filled = apply_preset({name: getattr(args, name) for name in names}, args.preset, args.training_command)
    for name in names:
        setattr(args, name, filled[name])


def _options(args):
    """The parsed flags as typed options for edgeskin.training_setup."""
    from edgeskin.train import TrainSettings
    from edgeskin.training_setup import TrainOptions

    _with_preset(args)
    settings = TrainSettings(out_dir=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, seed=args.seed,
                             precision=args.precision, device=args.device, max_steps=args.max_steps, resume=args.resume,
                             clip_grad=args.clip_grad)
    return TrainOptions(settings, data=args.data, train_split=args.train_split, val_split=args.val_split,
                        balanced=args.class_weights == "balanced", threads=args.threads,
                        command="edgeskin " + shlex.join(sys.argv[1:]))


def _weights(args):
    from edgeskin.distill import DistillWeights

    return DistillWeights(args.temperature, args.alpha_kd, args.alpha_ce, args.alpha_mse)


def _report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_result(result, named: bool = True) -> None:
    name = f"{result.arch}: " if named else ""
    print(f"{name}best val BMA {result.best_val_bma:.4f} at epoch {result.best_epoch}: {result.best_path}")


def cmd_train(args) -> int:
    from edgeskin import training_setup

    result = training_setup.train(_options(args), args.arch, init=args.init, drop_path=args.drop_path, report=_report)
    _print_result(result, named=False)
    return 0


def cmd_distill(args) -> int:
    from edgeskin import training_setup

    _print_result(training_setup.distill(_options(args), args.teacher, args.blocks, _weights(args), report=_report,
                                         every_exit=args.every_exit))
    return 0


def cmd_cascade(args) -> int:
    """Cascading distillation: model K starts from the first K blocks of model K+1 and is distilled from it."""
    from edgeskin import training_setup

    for result in training_setup.cascade(_options(args), args.teacher, args.down_to, _weights(args), report=_report):
        _print_result(result)
    return 0
