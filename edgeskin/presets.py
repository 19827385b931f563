"""Training defaults as data: edgeskin's own, and the authors' setting (`--preset paper`).

The authors trained with the Hugging Face Trainer's defaults (Longman-Stan/SkinDistilVit:
train.py, distil.py): AdamW at lr 2e-4, batch 64, linear decay without warm-up, no weight decay,
gradient norm clipped at 1.0, no drop-path, unweighted cross-entropy; teachers about 60 epochs,
each distillation 20. A flag given on the command line always wins over the preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class TrainingDefaults:
    lr: float
    batch_size: int
    weight_decay: float
    warmup_epochs: float
    clip_grad: float | None  # max gradient norm; None: no clipping
    drop_path: float
    class_weights: str  # "none" or "balanced"
    epochs: dict[str, int] = field(default_factory=dict)  # per command: train, distill, cascade


PRESETS = {
    "edgeskin": TrainingDefaults(lr=2e-4, batch_size=64, weight_decay=0.05, warmup_epochs=1.0, clip_grad=None, drop_path=0.1,
                                 class_weights="none", epochs={"train": 30, "distill": 30, "cascade": 30}),
    "paper": TrainingDefaults(lr=2e-4, batch_size=64, weight_decay=0.0, warmup_epochs=0.0, clip_grad=1.0, drop_path=0.0,
                              class_weights="none", epochs={"train": 60, "distill": 20, "cascade": 20}),
}


def apply_preset(given: dict, preset: str, command: str) -> dict:
    """`given` (flag name -> value, None where the flag was not given) with the preset's values filled in."""
    defaults = PRESETS[preset]
    filled = dict(given)
    for item in fields(TrainingDefaults):
        if item.name in filled and filled[item.name] is None:
            value = getattr(defaults, item.name)
            filled[item.name] = value[command] if item.name == "epochs" else value
    return filled
