"""What `edgeskin train`, `distill` and `cascade` do, from typed options rather than parsed flags.

Threads, seed, images, class weights, objective and provenance around `train.fit`, so the
command-line module only parses and prints, and the same runs can be started from Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from edgeskin.checkpoint import LoadedModel
from edgeskin.data import load_images, open_dataset
from edgeskin.distill import DistillWeights, distillation_objective, parse_blocks, student_from_teacher
from edgeskin.environment import use_torch_threads
from edgeskin.image_sources import describe, resolve_images
from edgeskin.model_loading import load_checkpoint
from edgeskin.models import ModelConfig, build_model, config_for
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.train import ImageSet, TrainResult, TrainSettings, class_weights, cross_entropy_objective, fit

Report = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


@dataclass
class TrainOptions:
    """A training command's options: the loop's settings, plus where its images come from."""

    settings: TrainSettings
    data: str | Path | None = None  # None: the default rule of edgeskin.image_sources.resolve_images
    train_split: str = "train"
    val_split: str = "val"
    balanced: bool = False  # inverse-frequency cross-entropy weights, so thin classes count
    threads: int | None = None  # torch CPU threads (None: every usable core)
    command: str = ""  # the command line, recorded in each checkpoint's provenance


@dataclass(frozen=True)
class _Data:
    root: str
    train: ImageSet
    val: ImageSet


def _start(options: TrainOptions) -> None:
    use_torch_threads(options.threads)
    torch.manual_seed(options.settings.seed)


def _load_data(options: TrainOptions, config: ModelConfig, report: Report) -> _Data:
    source = resolve_images(options.data)
    train = open_dataset(source, options.train_split, config.class_names)
    val = open_dataset(source, options.val_split, config.class_names)
    cache = replace(config.preprocess, size=round(config.img_size * 450 / 400))  # paper's 400-of-450 crop
    report(describe("training", len(train), train.name))
    report(describe("validation", len(val), val.name))
    return _Data(source.label, ImageSet(load_images(train, cache), train.labels), ImageSet(load_images(val, config.preprocess), val.labels))


def _provenance(options: TrainOptions, data: _Data, **extra) -> dict:
    return {"command": options.command, "data": str(data.root), "train_split": options.train_split,
            "val_split": options.val_split, "seed": options.settings.seed, "torch": torch.__version__, **extra}


def _ce_weights(options: TrainOptions, labels, num_classes: int) -> torch.Tensor | None:
    return class_weights(labels, num_classes) if options.balanced else None


def train(options: TrainOptions, arch: str, init: str | Path | None = None, drop_path: float = 0.1,
          report: Report = _quiet) -> TrainResult:
    """A registry model (or the checkpoint `init`) trained with cross-entropy."""
    _start(options)
    model = load_checkpoint(init).model if init else build_model(config_for(arch), drop_path_rate=drop_path)
    data = _load_data(options, model.config, report)
    objective = cross_entropy_objective(_ce_weights(options, data.train.labels, model.config.num_classes))
    return fit(model, data.train, data.val, objective, options.settings, _provenance(options, data, arch=model.config.arch))


def _distill_step(options: TrainOptions, teacher: LoadedModel, blocks: list[int], weights: DistillWeights, data: _Data,
                  out_dir: Path, every_exit: bool = False) -> TrainResult:
    """One distillation: a student of the chosen teacher blocks, trained with the paper's loss."""
    student = student_from_teacher(teacher.model, blocks, every_exit)
    objective = distillation_objective(teacher.model, weights, _ce_weights(options, data.train.labels, student.config.num_classes))
    provenance = _provenance(options, data, arch=student.config.arch, teacher_sha256=teacher.source_sha256,
                             teacher_blocks=blocks, distill_weights=weights.__dict__)
    return fit(student, data.train, data.val, objective, replace(options.settings, out_dir=out_dir), provenance)


def distill(options: TrainOptions, teacher: str | Path, blocks: str, weights: DistillWeights | None = None,
            report: Report = _quiet, every_exit: bool = False) -> TrainResult:
    """A student of the teacher's `blocks` (first6, last6, even6 or 0,1,2,...) distilled from it;
    every_exit: with an exit head after each of its blocks, each distilled (anytime inference)."""
    _start(options)
    loaded = load_checkpoint(teacher)
    chosen = parse_blocks(blocks, loaded.config.depth)
    return _distill_step(options, loaded, chosen, weights or DistillWeights(), _load_data(options, loaded.config, report),
                         options.settings.out_dir, every_exit)


def cascade(options: TrainOptions, teacher: str | Path, down_to: int = 1, weights: DistillWeights | None = None,
            report: Report = _quiet) -> Iterator[TrainResult]:
    """Cascading distillation, one result per depth as it finishes, as the authors ran it: first a
    model of the teacher's own depth distilled from the teacher (the paper's best, at 12 blocks),
    then the model of depth K starts from the first K blocks of the model of depth K+1 and is
    distilled from it (OUT/depthKK)."""
    _start(options)
    loaded = load_checkpoint(teacher)
    depth = loaded.config.depth
    if not 1 <= down_to <= depth:
        raise EdgeskinError(f"--down-to {down_to}: must be between 1 and {depth} for a {depth}-block teacher")
    data, weights = _load_data(options, loaded.config, report), weights or DistillWeights()
    for student_depth in range(depth, down_to - 1, -1):
        result = _distill_step(options, loaded, list(range(student_depth)), weights, data,
                               Path(options.settings.out_dir) / f"depth{student_depth:02d}")
        yield result
        loaded = load_checkpoint(result.best_path)
