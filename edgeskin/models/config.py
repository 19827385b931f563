"""Model configurations: the named SkinDistilViT registry and the config stored in checkpoints."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace

from edgeskin.runtime.errors import EdgeskinError, shown
from edgeskin.runtime.model_contract import ModelContract
from edgeskin.runtime.preprocess import PreprocessConfig

# ISIC 2019 diagnostic classes in the paper's order. The paper's HF models add a 9th output,
# UNK, that is never a label: importers drop it (edgeskin.hf_import).
ISIC_CLASSES: tuple[str, ...] = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
UNKNOWN_CLASS = "UNK"

# width name -> (embed_dim, num_heads); ViT-Ti/S/B with 64-wide heads.
WIDTHS: dict[str, tuple[int, int]] = {"ti": (192, 3), "s": (384, 6), "b": (768, 12)}
_NAME = re.compile(r"^skindistilvit-(ti|s|b)(\d{1,2})(-exits)?$")


class StatesContract:
    """For configs with class_names, mean, std and preprocess: the model contract they state."""

    @property
    def contract(self) -> ModelContract:
        return ModelContract(self.class_names, self.mean, self.std, self.preprocess)


@dataclass(frozen=True)
class ModelConfig(StatesContract):
    """Everything needed to rebuild a SkinViT; saved as JSON in every native checkpoint."""

    arch: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: int = 224
    exits: tuple[int, ...] = ()  # blocks (1-based) with an extra exit head; the final head is always there
    class_names: tuple[str, ...] = ISIC_CLASSES
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        problem = config_problem(asdict(self))
        if problem:
            raise EdgeskinError(f"model config: {problem}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def exit_blocks(self) -> tuple[int, ...]:
        """Every block that has a classifier, the final one included, in order."""
        return tuple(sorted(set(self.exits) | {self.depth}))

    def with_depth(self, depth: int) -> ModelConfig:
        """The same family at another depth (a distillation student); keeps exits that still fit."""
        arch = _rename_depth(self.arch, depth)
        exits = tuple(k for k in self.exits if k < depth)
        return replace(self, arch=arch, depth=depth, exits=exits)

    def with_every_exit(self) -> ModelConfig:
        """The same model with an exit head after every block (what anytime inference stops at)."""
        match = _NAME.match(self.arch)
        arch = self.arch if not match or match.group(3) else f"{self.arch}-exits"
        return replace(self, arch=arch, exits=tuple(range(1, self.depth)))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: object, source: object = "config") -> ModelConfig:
        """A config read from a file, every value checked (config_problem) before anything is built from it."""
        problem = config_problem(data)
        if problem:
            raise EdgeskinError.about(source, f"model config: {problem}")
        values = dict(data)  # type: ignore[call-overload]  # a mapping: checked above
        for key in ("exits", "class_names", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        if "preprocess" in values:
            values["preprocess"] = PreprocessConfig.from_dict(values["preprocess"])
        return cls(**values)


# --- checks of a config read from a file ------------------------------------------------------------
# A config is a few hundred bytes of JSON that decides how much is allocated and how the model is
# built: a zero is a ZeroDivisionError, a huge number is gigabytes. Ranges are far beyond any ViT
# (ViT-g: 1408 wide, 40 blocks) and far below what would exhaust memory before the weights are compared.

MAX_CLASSES = 10_000
MAX_MLP_RATIO = 16.0
_INT_RANGES = {"embed_dim": (1, 8192), "depth": (1, 48), "num_heads": (1, 8192), "patch_size": (1, 2048), "img_size": (16, 2048)}
_REQUIRED = ("arch", "embed_dim", "depth", "num_heads")
_PREPROCESS_KEYS = ("size", "crop_border", "border_threshold", "resample")


def int_problem(name: str, value: object, low: int = 1, high: int | None = None) -> str | None:
    """Why `value` is not an int in low..high (bools and floats are not ints)."""
    if isinstance(value, bool) or not isinstance(value, int) or (low == 1 and value < 1):
        return f"{name} must be a positive integer, got {shown(value)}" if low == 1 else f"{name} must be an integer, got {shown(value)}"
    if value < low:
        return f"{name} must be at least {low}, got {value}"
    if high is not None and value > high:
        return f"{name} must be at most {high}, got {value}"
    return None


def number_problem(name: str, value: object, positive: bool = False, high: float | None = None) -> str | None:
    """Why `value` is not a finite number (positive, at most `high`, when asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{name} must be a finite number, got {shown(value)}"
    if positive and value <= 0:
        return f"{name} must be positive, got {shown(value)}"
    if high is not None and value > high:
        return f"{name} must be at most {high:g}, got {shown(value)}"
    return None


def triplet_problem(name: str, value: object, positive: bool = False) -> str | None:
    """Why `value` is not three finite numbers (R, G, B), all positive when asked (a std)."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return f"{name} must be three numbers (R, G, B), got {shown(value)}"
    return next((p for p in (number_problem(f"{name}[{i}]", v, positive) for i, v in enumerate(value)) if p), None)


def _names_problem(names: object) -> str | None:
    if not isinstance(names, (list, tuple)) or not names:
        return f"class_names must be a non-empty list of names, got {shown(names)}"
    if len(names) > MAX_CLASSES:
        return f"class_names lists {len(names)} names, over the {MAX_CLASSES} limit"
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            return f"class_names[{i}] must be a non-empty string, got {shown(name)}"
    seen: set[str] = set()
    repeated = next((name for name in names if name in seen or seen.add(name)), None)
    return f"class_names lists {shown(repeated)} twice" if repeated is not None else None


def _preprocess_problem(data: object) -> str | None:
    """The preprocess mapping: known keys, and PreprocessConfig's own checks (types and ranges)."""
    if not isinstance(data, Mapping):
        return f"preprocess must be a mapping, got {shown(data)}"
    unknown = sorted(str(k) for k in data if k not in _PREPROCESS_KEYS)
    if unknown:
        return f"unknown preprocess keys {unknown}"
    try:
        PreprocessConfig.from_dict(dict(data))
    except EdgeskinError as exc:
        return str(exc)
    return None


def config_problem(data: object) -> str | None:
    """The first thing wrong with a model config's values (types, ranges, how they fit together),
    None when it is sound."""
    if not isinstance(data, Mapping):
        return f"expected a JSON object, got {shown(data)}"
    unknown = sorted(str(k) for k in set(data) - {f.name for f in fields(ModelConfig)})
    missing = [k for k in _REQUIRED if k not in data]
    if unknown or missing:
        return f"unknown keys {unknown}" if unknown else f"missing field {missing[0]!r}"
    values = {f.name: data.get(f.name, f.default) for f in fields(ModelConfig) if f.name != "preprocess"}
    arch = values["arch"]
    if not isinstance(arch, str) or not arch.strip() or len(arch) > 200:
        return f"arch must be a non-empty name, got {shown(arch)}"
    problem = next((p for p in (int_problem(k, values[k], *_INT_RANGES[k]) for k in _INT_RANGES) if p), None)
    problem = problem or number_problem("mlp_ratio", values["mlp_ratio"], positive=True, high=MAX_MLP_RATIO)
    problem = problem or number_problem("layer_norm_eps", values["layer_norm_eps"], positive=True, high=1.0)
    problem = problem or triplet_problem("mean", values["mean"]) or triplet_problem("std", values["std"], positive=True)
    problem = problem or _names_problem(values["class_names"]) or _preprocess_problem(data.get("preprocess", {}))
    if problem:
        return problem
    if not isinstance(values["qkv_bias"], bool):
        return f"qkv_bias must be true or false, got {shown(values['qkv_bias'])}"
    embed_dim, depth, exits = values["embed_dim"], values["depth"], values["exits"]
    if embed_dim % values["num_heads"]:
        return f"embed_dim {embed_dim} is not divisible by num_heads {values['num_heads']}"
    if values["img_size"] % values["patch_size"]:
        return f"img_size {values['img_size']} is not divisible by patch_size {values['patch_size']}"
    if int(embed_dim * values["mlp_ratio"]) < 1:
        return f"mlp_ratio {shown(values['mlp_ratio'])} leaves the MLP no hidden units at embed_dim {embed_dim}"
    if not isinstance(exits, (list, tuple)):
        return f"exits must be a list of block numbers, got {shown(exits)}"
    bad = [k for k in exits if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= depth]
    if bad or len(set(exits)) != len(exits):
        return f"exits must be distinct blocks 1..{depth}, got {shown(list(exits))}"
    return None


def _rename_depth(arch: str, depth: int) -> str:
    match = _NAME.match(arch)
    if not match:
        return f"{arch}-d{depth}"
    return f"skindistilvit-{match.group(1)}{depth}{match.group(3) or ''}"


def config_for(name: str) -> ModelConfig:
    """A registry name -> its config: skindistilvit-{ti,s,b}{1..12}[-exits].

    `-b12` is the paper's ViT-B/16 teacher, `-b6` its 6-block student, `-ti12`/`-ti6` the
    demo/test models; `-exits` adds an exit head after every block (multi-exit training).
    """
    match = _NAME.match(name)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise EdgeskinError(f"unknown model '{name}': expected one of {', '.join(available_models())}")
    width, depth, exits = match.group(1), int(match.group(2)), bool(match.group(3))
    embed_dim, num_heads = WIDTHS[width]
    return ModelConfig(
        arch=name,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        exits=tuple(range(1, depth)) if exits else (),
    )


def available_models() -> list[str]:
    """The names users are expected to ask for (every {width}{1..12} also resolves)."""
    return [
        "skindistilvit-b12",
        "skindistilvit-b12-exits",
        "skindistilvit-b6",
        "skindistilvit-b6-exits",
        "skindistilvit-s12",
        "skindistilvit-s6",
        "skindistilvit-ti12",
        "skindistilvit-ti12-exits",
        "skindistilvit-ti6",
        "skindistilvit-ti6-exits",
    ]
