"""Any checkpoint path -> LoadedModel: the one place that picks the reader (native or foreign)."""

from __future__ import annotations

from pathlib import Path

from edgeskin.checkpoint import CONFIG_KEY, LoadedModel, load_native, peek_metadata
from edgeskin.contract import StatedContract
from edgeskin.hf_import import import_foreign
from edgeskin.runtime.paths import regular_file

DEMO_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "demo" / "skindistilvit-ti6-demo.safetensors"


def load_checkpoint(path: str | Path, arch: str | None = None, stated: StatedContract | None = None) -> LoadedModel:
    """Load any supported checkpoint: native .safetensors, HF folder, timm state dict, .bin/.pt.

    `stated`: what the user says about classes and normalization (--classes, --mean, --std,
    --crop-border); required where the checkpoint does not carry them, an override where it does.
    """
    path = Path(path)
    if not path.is_dir():
        regular_file(path, "checkpoint file or folder")  # a FIFO would block the reader forever
    if path.is_file() and path.suffix == ".safetensors" and arch is None:
        _, metadata = peek_metadata(path)
        if CONFIG_KEY in metadata:
            return load_native(path, stated)
    return import_foreign(path, arch, stated or StatedContract())
