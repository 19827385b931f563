"""`edgeskin` command line: train, distill, cascade, eval, info, convert, predict, parity, bench.

Every user-facing failure is an EdgeskinError, printed as one line `edgeskin: error: ...` with
exit code 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from edgeskin.cli_args import add_contract_args, stated_from_args
from edgeskin.runtime.errors import EdgeskinError


def _add_data_args(p: argparse.ArgumentParser, split_default: str | None) -> None:
    p.add_argument("--data", help="dataset: folder with labels.csv + images/, a labels CSV, or an ISIC 2019 folder "
                   "(default: $EDGESKIN_DATA, else ../shared/data/isic-public beside a checkout, else the bundled CC0 set)")
    p.add_argument("--split", default=split_default, help=f"split to use, or 'all' (default: {split_default})")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeskin", description="SkinDistilViT: train, distill, evaluate and ship to the edge.")
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("eval", help="balanced multi-class accuracy and more on one split")
    p.add_argument("--checkpoint", required=True)
    add_contract_args(p)
    _add_data_args(p, split_default="test")
    p.add_argument("--exit", type=int, default=None, help="exit block (default: the final head)")
    p.add_argument("--all-exits", action="store_true", help="also print BMA of every exit head (multi-exit models)")
    p.add_argument("--json", type=Path, help="also write the full report as JSON here")

    from edgeskin import cli_convert, cli_parity

    cli_convert.add_parsers(sub)
    cli_parity.add_parsers(sub)

    p = sub.add_parser("info", help="describe a checkpoint or an artifact: its model contract")
    p.add_argument("checkpoint")
    add_contract_args(p)
    p.add_argument("--json", action="store_true")
    return parser


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


def cmd_eval(args) -> int:
    from edgeskin.data import load_images, open_dataset
    from edgeskin.evaluate import evaluate
    from edgeskin.image_sources import resolve_images
    from edgeskin.model_loading import load_checkpoint

    _threads(None)
    source = resolve_images(args.data)
    loaded = load_checkpoint(args.checkpoint, stated=stated_from_args(args))
    config = loaded.config
    dataset = open_dataset(source, args.split, config.class_names)
    images = load_images(dataset, config.preprocess)
    report = evaluate(loaded.model, images, dataset.labels, exit=args.exit, progress=True)
    print(f"{config.arch} on {dataset.name} ({report.n} images, exit {args.exit or config.depth})")
    print(f"BMA {report.bma:.4f}   accuracy {report.accuracy:.4f}")
    print(f"melanoma sensitivity {report.melanoma_sensitivity:.4f}   specificity {report.melanoma_specificity:.4f}")
    print(f"{'class':<6} {'recall':>7} {'n':>5}")
    for name in config.class_names:
        recall = report.per_class_recall[name]
        print(f"{name:<6} {'-' if recall != recall else f'{recall:.4f}':>7} {report.support[name]:>5}")
    per_exit = {}
    if args.all_exits:
        print(f"{'exit':<6} {'BMA':>7} {'acc':>7}")
        for block in config.exit_blocks:
            per_exit[block] = evaluate(loaded.model, images, dataset.labels, exit=block)
            print(f"{block:<6} {per_exit[block].bma:>7.4f} {per_exit[block].accuracy:>7.4f}")
    if args.json:
        payload = {"checkpoint": str(args.checkpoint), "checkpoint_sha256": loaded.source_sha256, "data": dataset.name,
                   "exit": args.exit or config.depth, **report.to_dict(),
                   "per_exit_bma": {str(k): v.bma for k, v in per_exit.items()}}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


def _artifact_info(path: Path, as_json: bool) -> int:
    """The contract an artifact carries: classes, input, preprocessing, normalization, outputs."""
    from dataclasses import asdict

    from edgeskin.runtime.formats import read_artifact_metadata

    meta = read_artifact_metadata(path)
    if as_json:
        print(json.dumps({"artifact": str(path), **asdict(meta)}, indent=2))
        return 0
    print(f"{path}  ({meta.target} {meta.recipe}, {meta.model} exit {meta.exit})")
    print(f"tensor     {meta.input.layout} {'x'.join(map(str, meta.input.shape))} {meta.input.dtype}")
    print("\n".join(meta.contract.describe()))
    return 0


def cmd_info(args) -> int:
    from edgeskin.model_loading import load_checkpoint
    from edgeskin.runtime.formats import is_artifact

    if is_artifact(args.checkpoint):
        return _artifact_info(Path(args.checkpoint), args.json)
    loaded = load_checkpoint(args.checkpoint, stated=stated_from_args(args))
    params = sum(p.numel() for p in loaded.model.parameters())
    info = {"checkpoint": str(loaded.source), "format": loaded.source_format, "sha256": loaded.source_sha256,
            "parameters": params, "config": loaded.config.to_dict(), "provenance": loaded.provenance}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    c = loaded.config
    print(f"{loaded.source}  ({loaded.source_format}, sha256 {loaded.source_sha256[:16]}...)")
    print(f"model      {c.arch}: {c.depth} blocks x {c.embed_dim} wide, {c.num_heads} heads, {params / 1e6:.2f}M parameters")
    print(f"exits      after blocks {', '.join(map(str, c.exit_blocks))}")
    print("\n".join(c.contract.describe()))
    for key in ("command", "val_bma", "epoch", "teacher_sha256"):
        if key in loaded.provenance:
            print(f"{key:<10} {loaded.provenance[key]}")
    return 0


def _lazy(module: str, name: str):
    """A command implemented in another module, imported only when that command runs."""

    def run(args) -> int:
        import importlib

        return getattr(importlib.import_module(module), name)(args)

    return run


COMMANDS = {"train": cmd_train, "distill": cmd_distill, "cascade": cmd_cascade, "eval": cmd_eval, "info": cmd_info,
            "convert": _lazy("edgeskin.cli_convert", "cmd_convert"), "predict": _lazy("edgeskin.cli_convert", "cmd_predict"),
            "parity": _lazy("edgeskin.cli_parity", "cmd_parity"), "bench": _lazy("edgeskin.cli_parity", "cmd_bench")}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except EdgeskinError as exc:
        print(f"edgeskin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeskin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
