"""Shared fixtures: real images (EDGESKIN_DATA / ../shared / the bundled CC0 set) and small seeded models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "edgeskin" / "assets" / "isic-cc0"
SAMPLES = BUNDLED / "images"
DEMO_STUDENT = REPO / "edgeskin" / "assets" / "demo" / "skindistilvit-ti6-demo.safetensors"
SAMPLE_COUNT = 16


@pytest.fixture(scope="session", autouse=True)
def verified_models_cache(tmp_path_factory):
    """A fresh cache of vouched-for model files (runtime/integrity.py) per test session, so every
    session probes its files itself and never reads or fills the user's ~/.cache/edgeskin."""
    import os

    from edgeskin.runtime.integrity import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("edgeskin-cache"))
    yield Path(os.environ[CACHE_ENV])
    if previous is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = previous


def sample_dataset():
    """The first 16 images of the bundled test split (full-size originals, downscaled: real resizes)."""
    from edgeskin.data import Dataset, open_dataset

    test = open_dataset(BUNDLED, "test")
    return Dataset(test.name, test.samples[:SAMPLE_COUNT], test.class_names)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled images folder (files only; the dataset root with labels.csv is `bundled_dir`)."""
    return SAMPLES


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    return BUNDLED


@pytest.fixture(scope="session")
def sample_images() -> list[Path]:
    return [s.path for s in sample_dataset().samples]


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The configured real-image folder: $EDGESKIN_DATA, else ../shared, else the bundled set."""
    from edgeskin.image_sources import resolve_images

    return resolve_images(None).root


@pytest.fixture(scope="session")
def sample_pixels() -> np.ndarray:
    """The 16 sample images, preprocessed: uint8 (16, 224, 224, 3), in `sample_images` order."""
    from edgeskin.data import load_images
    from edgeskin.runtime import PreprocessConfig

    return load_images(sample_dataset(), PreprocessConfig(), progress=False)


ALL_RECIPES = "fp32,fp16,dynamic,int8,int8-mixed,w8a16,w8"  # tflite: the first six; onnx: fp32; coreml: fp32, fp16, w8


@pytest.fixture(scope="session")
def converted(tmp_path_factory, real_data_dir):
    """`edgeskin convert --target all` on the demo student, once per session (conversions take
    minutes here): (out folder, manifest, exit code, stderr)."""
    from tests.helpers import run_console

    cwd = tmp_path_factory.mktemp("convert")
    out = cwd / "dist"
    # the console script, with a relative --out from another working directory, as `make demo` runs it;
    # images by the default rule (../shared when it is beside the checkout, else the bundled set)
    done = run_console("convert", "--target", "all", "--recipes", ALL_RECIPES, "--out", "dist", cwd=cwd)
    assert (out / "manifest.json").is_file(), done.stderr
    return out, json.loads((out / "manifest.json").read_text()), done.returncode, done.stderr


def perturbed_model(arch: str, seed: int = 0):
    """A registry model with seeded, perturbed weights (see edgeskin.models.seeded_weights)."""
    import torch

    from edgeskin.models import build_model, config_for, seeded_weights

    torch.manual_seed(seed)
    return seeded_weights(build_model(config_for(arch)), seed)


@pytest.fixture
def tiny_model():
    return perturbed_model("skindistilvit-ti2")


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory) -> Path:
    """A seeded 2-block student as fp32 .tflite, through the public API (verdict on the bundled images)."""
    import edgeskin

    out = tmp_path_factory.mktemp("tiny") / "ti2"
    result = edgeskin.convert(perturbed_model("skindistilvit-ti2"), target="tflite", recipes=["fp32"], out=out, data=BUNDLED)
    return result.artifacts[0].path
