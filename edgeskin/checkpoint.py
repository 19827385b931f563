"""Native checkpoints: one .safetensors file whose metadata holds the model config as JSON.

Never pickle for our own format. Foreign formats (Hugging Face folders, timm state dicts,
.bin/.pt through torch.load(weights_only=True)) are read by edgeskin.hf_import; which reader a
path needs is decided in edgeskin.model_loading, above both (no import cycle between them).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgeskin.contract import StatedContract
from edgeskin.models import ModelConfig, SkinViT, build_model
from edgeskin.runtime.errors import EdgeskinError

CONFIG_KEY = "edgeskin.config"
PROVENANCE_KEY = "edgeskin.provenance"
FORMAT_VERSION = "1"


@dataclass
class LoadedModel:
    """A model ready for use, plus where it came from."""

    model: SkinViT  # or, for a generic in-memory module, edgeskin.models.wrapped.WrappedClassifier
    source: Path
    source_sha256: str
    source_format: str  # "edgeskin", "hf-vit", "hf-distilvit", "hf-fcvit", "timm", "module"
    provenance: dict = field(default_factory=dict)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def describe(self) -> dict:
        """Source, format, hash, parameter count, config and provenance (what `edgeskin info` shows)."""
        return {"checkpoint": str(self.source), "format": self.source_format, "sha256": self.source_sha256,
                "parameters": sum(p.numel() for p in self.model.parameters()), "config": self.config.to_dict(),
                "provenance": self.provenance}


def sha256_of(files: Path | list[Path]) -> str:
    """sha256 of a file, or of the named files in name order (an HF checkpoint's weights and configs;
    never a whole folder, which may hold gigabytes of optimizer state)."""
    digest = hashlib.sha256()
    for file in sorted(files) if isinstance(files, list) else [files]:
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(model: SkinViT, path: str | Path, provenance: dict | None = None) -> Path:
    """Write model weights + config atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": "pt",
        "edgeskin.format_version": FORMAT_VERSION,
        CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True),
        PROVENANCE_KEY: json.dumps(provenance or {}, sort_keys=True),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors file, with a one-line error when it is not one."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise EdgeskinError.about(path, f"not a readable .safetensors file ({exc})") from None
    return tensors, metadata


def model_from_state(config: ModelConfig, state: dict[str, torch.Tensor], source: Path) -> SkinViT:
    """Build the model and load weights strictly; a config/weights mismatch is a clear error."""
    model = build_model(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"shape mismatch: {shapes[0]}" + (f" (+{len(shapes) - 1} more)" if len(shapes) > 1 else ""))
        if missing:
            parts.append(f"{len(missing)} missing weights (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weights (e.g. {unexpected[0]})")
        raise EdgeskinError.about(source, f"config ({config.arch}) does not match weights: {'; '.join(parts)}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.eval()


def load_native(path: Path, stated: StatedContract | None = None) -> LoadedModel:
    tensors, metadata = read_safetensors(path)
    if CONFIG_KEY not in metadata:
        raise EdgeskinError.about(path, "safetensors file has no edgeskin config")
    try:
        config = ModelConfig.from_dict(json.loads(metadata[CONFIG_KEY]), source=path)
        provenance = json.loads(metadata.get(PROVENANCE_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise EdgeskinError.about(path, f"edgeskin config metadata is not valid JSON ({exc})") from None
    if stated is not None:
        config = stated.apply(config, path)
    model = model_from_state(config, tensors, path)
    return LoadedModel(model, path, sha256_of(path), "edgeskin", provenance)


def peek_metadata(path: Path) -> tuple[int, dict]:
    """Read only the safetensors header (fast; no tensors loaded)."""
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size < 100_000_000:
                raise ValueError("bad header size")
            header = json.loads(handle.read(size))
    except (OSError, ValueError) as exc:
        raise EdgeskinError.about(path, f"not a readable .safetensors file ({exc})") from None
    return size, header.get("__metadata__", {}) or {}
