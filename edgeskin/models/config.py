"""Model configurations: the named SkinDistilViT registry and the config stored in checkpoints."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace

from edgeskin.runtime.errors import EdgeskinError
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
        if self.embed_dim % self.num_heads:
            raise EdgeskinError(f"model config {self.arch}: embed_dim {self.embed_dim} not divisible by {self.num_heads} heads")
        if not 1 <= self.depth <= 48:
            raise EdgeskinError(f"model config {self.arch}: depth {self.depth} out of range")
        bad = [k for k in self.exits if not 1 <= k <= self.depth]
        if bad:
            raise EdgeskinError(f"model config {self.arch}: exits {bad} outside blocks 1..{self.depth}")
        if len(set(self.class_names)) != len(self.class_names) or not self.class_names:
            raise EdgeskinError(f"model config {self.arch}: class names must be unique and non-empty")

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

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict, source: object = "config") -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EdgeskinError(f"{source}: unknown model config keys {unknown}")
        try:
            values = dict(data)
            for key in ("exits", "class_names", "mean", "std"):
                if key in values:
                    values[key] = tuple(values[key])
            if "preprocess" in values:
                values["preprocess"] = PreprocessConfig.from_dict(values["preprocess"])
            return cls(**values)
        except TypeError as exc:
            raise EdgeskinError(f"{source}: invalid model config ({exc})") from None


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
