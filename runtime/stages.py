"""Stages of an anytime artifact: a multi-exit model cut so a device stops after any exit without
computing deeper blocks. Shared by the exporter (edgeskin/models/stages.py, converters/anytime.py)
and the runtime (runtime/anytime.py); torch-free.

Stage k runs the blocks after the previous exit up to exit k and that exit's head. In a .tflite
file each stage is a signature `exit_<k>`: the first takes `pixels` (0..255), the others the
previous stage's `tokens`; every stage returns `probabilities` and `logits`, all but the last
also `tokens` for the next. A Core ML package holds the same stages as functions (COREML_NAMES).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import EdgeskinError

TOKENS, PROBABILITIES, LOGITS = "tokens", "probabilities", "logits"
# A Core ML anytime package (converters/coreml_anytime.py) has a function per stage, named like the
# signatures; Core ML forbids one name as a function's input and output, and its image input is
# `image` as in every edgeskin package: the stage names that differ there
COREML_NAMES = {"pixels": "image", TOKENS: "next_tokens"}


@dataclass(frozen=True)
class StageSpec:
    exit: int  # the block whose head ends this stage
    first: int  # the first block it runs (1-based)
    final: bool  # the last stage: no tokens out

    @property
    def key(self) -> str:
        """The stage's signature name."""
        return f"exit_{self.exit}"

    @property
    def input(self) -> str:
        return "pixels" if self.first == 1 else TOKENS

    @property
    def outputs(self) -> tuple[str, ...]:
        return (PROBABILITIES, LOGITS) if self.final else (TOKENS, PROBABILITIES, LOGITS)


def stage_plan(exit_blocks: Sequence[int], exits: Sequence[int] | None = None) -> list[StageSpec]:
    """Stages ending at `exits` (default: every exit of the model); the model's last exit always ends the last."""
    available = sorted(exit_blocks)
    chosen = sorted(set(exits or available) | {available[-1]})
    missing = [k for k in chosen if k not in available]
    if missing:
        raise EdgeskinError(f"--exits: no exit after block {missing[0]} (exits: {', '.join(map(str, available))})")
    starts = [1, *[k + 1 for k in chosen[:-1]]]
    return [StageSpec(k, first, k == chosen[-1]) for k, first in zip(chosen, starts, strict=True)]


def parse_exits(text: str, exit_blocks: Sequence[int]) -> list[int]:
    """`--exits all` or a comma list of exit blocks like 2,4,6."""
    if text.strip().lower() == "all":
        return sorted(exit_blocks)
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise EdgeskinError(f"--exits {text}: expected 'all' or exit blocks like 2,4,6") from None
