"""A Hugging Face folder's preprocessor_config.json -> edgeskin's preprocessing and normalization.

edgeskin resizes straight to a square with Pillow (bilinear or bicubic), scales by 1/255 and
normalizes inside the graph. A processor that does anything else (keeps the aspect ratio, crops,
another filter or scale) is refused, naming the file and the value, never approximated: a model
fed other pixels than it was trained on loses accuracy without any error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgeskin.contract import ContractMissing, StatedContract
from edgeskin.models.config import number_problem, triplet_problem
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.paths import read_bytes

PROCESSOR_FILE = "preprocessor_config.json"
PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}  # as transformers writes them
SUPPORTED_FILTERS = ("bilinear", "bicubic")  # edgeskin.runtime.preprocess.RESAMPLING


@dataclass(frozen=True)
class Preprocessing:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: str  # bilinear when the folder does not say (transformers' ViT default, and the paper's)


def read_json(path: Path) -> dict:
    """A JSON object from a regular file (a FIFO or a folder in its place refused before it is opened)."""
    try:
        data = json.loads(read_bytes(path, "JSON file"))
    except ValueError as exc:  # not UTF-8, or not JSON
        raise EdgeskinError.about(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EdgeskinError.about(path, "expected a JSON object")
    return data


def read_preprocessing(folder: Path, image_size: int, stated: StatedContract) -> Preprocessing:
    """mean/std from --mean/--std, else the processor's (image_mean/image_std; none when do_normalize
    is false); its resize checked against what edgeskin does and the model's `image_size`."""
    path = folder / PROCESSOR_FILE
    processor = read_json(path) if os.path.lexists(path) else {}
    found = _normalization(processor, path)
    found.update({k: v for k, v in (("mean", stated.mean), ("std", stated.std)) if v is not None})
    missing = [f"--{k}" for k in ("mean", "std") if k not in found]
    if missing:
        raise ContractMissing.about(folder, f"no {PROCESSOR_FILE} with image_mean/image_std: pass {' and '.join(missing)} "
                                  "(the normalization the model was trained with; the paper's: 0.5,0.5,0.5)")
    _check_resize(processor, path, image_size)
    return Preprocessing(found["mean"], found["std"], _resample(processor, path))


def _normalization(processor: dict, path: Path) -> dict:
    if processor.get("do_normalize", True) is False:
        return {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # pixels / 255 as they are
    found = {}
    for key, ours in (("image_mean", "mean"), ("image_std", "std")):
        value = processor.get(key)
        if value is not None:
            problem = triplet_problem(key, value, positive=ours == "std")
            if problem:
                raise EdgeskinError.about(path, problem)
            found[ours] = tuple(float(v) for v in value)
    return found


def _check_resize(processor: dict, path: Path, image_size: int) -> None:
    """A straight resize of the whole image to image_size x image_size, then x 1/255: all edgeskin does."""
    if processor.get("do_resize", True) is False:
        raise EdgeskinError.about(path, "do_resize is false: edgeskin resizes every image to the model's input size")
    if processor.get("do_center_crop"):
        raise EdgeskinError.about(path, f"do_center_crop is true (crop_size {processor.get('crop_size')}): edgeskin resizes "
                                  "the whole image and does not crop")
    scale = processor.get("rescale_factor", 1 / 255) if processor.get("do_rescale", True) is not False else 1
    if number_problem("rescale_factor", scale) or abs(scale * 255 - 1) > 1e-6:  # NaN is a number JSON may hold
        raise EdgeskinError.about(path, f"rescale_factor {scale} (do_rescale {processor.get('do_rescale', True)}): "
                                  "edgeskin scales pixels by 1/255 before normalizing")
    size = processor.get("size")
    if size is None:
        return  # transformers' default for ViT: the model's own size
    if isinstance(size, dict) and "shortest_edge" in size:
        raise EdgeskinError.about(path, f"size {json.dumps(size)} keeps the aspect ratio: edgeskin resizes straight to a square")
    side = size if isinstance(size, int) and not isinstance(size, bool) else None
    if isinstance(size, dict) and isinstance(size.get("height"), int) and size.get("height") == size.get("width"):
        side = size["height"]
    if side is None:
        raise EdgeskinError.about(path, f"size {json.dumps(size)}: edgeskin resizes to a square (an int or equal height and width)")
    if side != image_size:
        raise EdgeskinError.about(path, f"size {side} differs from config.json's image_size {image_size}, "
                                  "the input size the model's position embeddings were made for")


def _resample(processor: dict, path: Path) -> str:
    value = processor.get("resample", 2)
    name = PIL_FILTERS.get(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if name not in SUPPORTED_FILTERS:
        shown = f"{value} ({name})" if name else json.dumps(value)
        raise EdgeskinError.about(path, f"resample {shown}: edgeskin resizes with {' or '.join(SUPPORTED_FILTERS)} "
                                  f"({', '.join(f'{k} = {v}' for k, v in PIL_FILTERS.items() if v in SUPPORTED_FILTERS)})")
    return name
