"""Native checkpoints: one .safetensors file whose metadata holds the model config as JSON; and the
bounded readers of tensor files (safetensors; .bin/.pt through torch.load(weights_only=True)).

Never pickle for our own format. Foreign formats (Hugging Face folders, timm state dicts) are
mapped by edgeskin.hf_import; which reader a path needs is decided in edgeskin.model_loading,
above both (no import cycle between them).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgeskin.contract import StatedContract
from edgeskin.models import ModelConfig, SkinViT, build_model
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.paths import regular_file

CONFIG_KEY = "edgeskin.config"
PROVENANCE_KEY = "edgeskin.provenance"
FORMAT_VERSION = "1"
# The most parameters a checkpoint's config may describe: 1e9 is 4 GB of float32, twelve times the
# paper's ViT-B/16 teacher (86M) and about ViT-g's size. A config past it is refused before anything
# real is allocated: a few bytes of JSON must not cost gigabytes of memory.
MAX_PARAMETERS = 1_000_000_000


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
        with open(regular_file(file, "checkpoint file"), "rb") as handle:
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

    regular_file(path, "checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise EdgeskinError.about(path, f"not a readable .safetensors file ({exc})") from None
    return tensors, metadata


# torch.save writes its zip entries stored, not compressed: a real .bin/.pt unpacks to about its own
# size. A zip that promises more (a 2 MB file of deflated zeros unpacking to gigabytes) is refused
# before torch.load, which would allocate what the directory promises.
ZIP_SLACK_BYTES = 64 << 20


def _check_zip_size(path: Path) -> None:
    """Refuse a zip-based torch file whose entries unpack to more than twice its size plus ZIP_SLACK_BYTES."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise EdgeskinError.about(path, f"not a readable PyTorch file (its zip directory cannot be read: {exc})") from None
    limit = 2 * path.stat().st_size + ZIP_SLACK_BYTES
    if unpacked > limit:
        raise EdgeskinError.about(path, f"refused: its zip entries unpack to {unpacked:,} bytes, over the {limit:,}-byte limit "
                                  "(twice the file size + 64 MiB; torch.save stores entries uncompressed)")


def torch_load_state(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True: tensors only, no arbitrary pickled objects."""
    regular_file(path, "checkpoint file")
    if zipfile.is_zipfile(path):
        _check_zip_size(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing; the error says it all
            warnings.simplefilter("ignore")
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe pickle"
        raise EdgeskinError.about(path, f"refused: not a plain state dict (weights_only load failed: {first})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise EdgeskinError.about(path, f"not a readable PyTorch file ({str(exc).splitlines()[0]})") from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise EdgeskinError.about(path, "not a state dict (expected a mapping of names to tensors)")
    return loaded


def model_from_state(config: ModelConfig, state: dict[str, torch.Tensor], source: Path) -> SkinViT:
    """Build the model and load weights strictly; a config/weights mismatch is a clear error.

    The config is first built on the meta device (shapes, no memory), so a config that asks for
    gigabytes is compared with the weights, and refused, before anything real is allocated."""
    with torch.device("meta"):
        skeleton = build_model(config)
    parameters = sum(p.numel() for p in skeleton.parameters())
    if parameters > MAX_PARAMETERS:
        raise EdgeskinError.about(source, f"config ({config.arch}) describes {parameters:,} parameters "
                                  f"({parameters * 4 / 1e9:.1f} GB as float32), over the {MAX_PARAMETERS:,} limit")
    expected = skeleton.state_dict()
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
    model = build_model(config)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.eval()


def load_native(path: Path, stated: StatedContract | None = None) -> LoadedModel:
    """The config (from the header alone) is checked before any tensor is read."""
    _, metadata = peek_metadata(path)
    if CONFIG_KEY not in metadata:
        raise EdgeskinError.about(path, "safetensors file has no edgeskin config")
    config = ModelConfig.from_dict(_metadata_json(path, metadata, CONFIG_KEY), source=path)
    provenance = _metadata_json(path, metadata, PROVENANCE_KEY) if PROVENANCE_KEY in metadata else {}
    if not isinstance(provenance, dict):
        raise EdgeskinError.about(path, f"{PROVENANCE_KEY} metadata is not a JSON object")
    if stated is not None:
        config = stated.apply(config, path)
    tensors, _ = read_safetensors(path)
    model = model_from_state(config, tensors, path)
    return LoadedModel(model, path, sha256_of(path), "edgeskin", provenance)


def _metadata_json(path: Path, metadata: dict, key: str) -> object:
    try:
        return json.loads(metadata[key])
    except (TypeError, ValueError) as exc:  # not a string, or not JSON
        raise EdgeskinError.about(path, f"{key} metadata is not valid JSON ({exc})") from None


def peek_metadata(path: Path) -> tuple[int, dict]:
    """Read only the safetensors header (fast; no tensors loaded)."""
    regular_file(path, "checkpoint file")
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size < 100_000_000:
                raise ValueError("bad header size")
            header = json.loads(handle.read(size))
        metadata = (header.get("__metadata__") or {}) if isinstance(header, dict) else None
        if not isinstance(metadata, dict):
            raise ValueError("the header is not a JSON object with a __metadata__ object")
    except (OSError, ValueError) as exc:
        raise EdgeskinError.about(path, f"not a readable .safetensors file ({exc})") from None
    return size, metadata
