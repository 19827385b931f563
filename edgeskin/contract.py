"""What a user states about their model's contract, and how it meets what a checkpoint carries.

A checkpoint that carries class names and normalization (edgeskin metadata; a Hugging Face
folder's id2label and preprocessor_config.json) is read as it is; what it lacks must be stated
(--classes / --classes-file, --mean, --std), never assumed. A statement that contradicts the
weights (a class count that is not the head's) is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.paths import regular_file


class ContractMissing(EdgeskinError):
    """A model that carries neither class names nor normalization, and the user stated none: the
    message names what to pass. A check against artifacts converted from it may take their record."""


@dataclass(frozen=True)
class StatedContract:
    """--classes/--classes-file, --mean, --std, --crop-border as given (None: not stated); input_size
    only from Python (edgeskin.load_model): a generic module's input is not fixed by its weights."""

    class_names: tuple[str, ...] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    crop_border: bool | None = None
    input_size: int | None = None

    def missing(self, needs_classes: bool, needs_normalization: bool, python: bool = False) -> list[str]:
        """The flags (python=True: the keyword arguments) a model without these facts needs, in the
        order a user would add them."""
        names = ("classes=", "mean=", "std=") if python else ("--classes (or --classes-file)", "--mean", "--std")
        wanted = (needs_classes and self.class_names is None, needs_normalization and self.mean is None,
                  needs_normalization and self.std is None)
        return [name for name, needed in zip(names, wanted, strict=True) if needed]

    def or_else(self, carried: StatedContract) -> StatedContract:
        """What was stated, with the gaps filled from `carried` (e.g. an artifact's recorded contract)."""
        return replace(carried, **{k: v for k, v in self.__dict__.items() if v is not None})

    def preprocessing_only(self) -> StatedContract:
        return StatedContract(crop_border=self.crop_border, input_size=self.input_size)

    def apply(self, config, source: object):
        """A ModelConfig with the stated facts (class count checked against the head)."""
        changes: dict = {}
        if self.input_size is not None and self.input_size != config.img_size:
            raise EdgeskinError.about(source, f"input_size={self.input_size}, but the model takes {config.img_size}x{config.img_size} "
                                      "images (fixed by its weights; input_size is for generic modules)")
        if self.class_names is not None:
            if len(self.class_names) != config.num_classes:
                raise EdgeskinError.about(source, f"--classes names {len(self.class_names)} classes but the model's head "
                                          f"has {config.num_classes} outputs")
            changes["class_names"] = self.class_names
        if self.mean is not None:
            changes["mean"] = self.mean
        if self.std is not None:
            changes["std"] = self.std
        if self.crop_border is not None:
            changes["preprocess"] = replace(config.preprocess, crop_border=self.crop_border)
        return replace(config, **changes) if changes else config


def parse_classes(text: str, flag: str = "--classes") -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not names or any(not n for n in names):
        raise EdgeskinError(f"{flag} {text!r}: expected comma-separated class names, none empty")
    if len(set(names)) != len(names):
        raise EdgeskinError(f"{flag} {text!r}: class names must be unique")
    return names


def read_classes_file(path: str | Path) -> tuple[str, ...]:
    """One class name per line (blank lines and #-comments skipped), in output order."""
    path = regular_file(path, "classes file")  # a FIFO given as the file would block forever
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeskinError.about(path, f"cannot read the classes file ({exc.__class__.__name__})") from None
    names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not names:
        raise EdgeskinError.about(path, "classes file lists no class names")
    return parse_classes(",".join(names), f"--classes-file {path}")


def parse_triplet(text: str, flag: str) -> tuple[float, float, float]:
    """'0.485,0.456,0.406' (or one number for all three channels) -> three floats."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise EdgeskinError(f"{flag} {text!r}: expected three comma-separated numbers (R,G,B)") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise EdgeskinError(f"{flag} {text!r}: expected three numbers (R,G,B), got {len(values)}")
    if flag == "--std" and min(values) <= 0:
        raise EdgeskinError(f"{flag} {text!r}: standard deviations must be positive")
    return values  # type: ignore[return-value]


def stated_contract(classes: str | None = None, classes_file: str | Path | None = None, mean: str | None = None,
                    std: str | None = None, crop_border: bool | None = None, input_size: int | None = None) -> StatedContract:
    if classes is not None and classes_file is not None:
        raise EdgeskinError("--classes and --classes-file: give one of them")
    if input_size is not None and (isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 8):
        raise EdgeskinError(f"input_size={input_size!r}: expected the side of the square input in pixels (an int, at least 8)")
    names = parse_classes(classes) if classes is not None else read_classes_file(classes_file) if classes_file is not None else None
    return StatedContract(names, parse_triplet(mean, "--mean") if mean is not None else None,
                          parse_triplet(std, "--std") if std is not None else None, crop_border, input_size)
