"""Shared fixtures: real images (EDGESKIN_DATA / ../shared / bundled samples) and small seeded models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "edgeskin" / "assets" / "samples"
DEMO_STUDENT = REPO / "edgeskin" / "assets" / "demo" / "skindistilvit-ti6-demo.safetensors"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The configured real-image folder (falls back to the bundled samples)."""
    from edgeskin.data import data_root

    return data_root()


@pytest.fixture(scope="session")
def sample_pixels() -> np.ndarray:
    """The 16 bundled real images, preprocessed: uint8 (16, 224, 224, 3)."""
    from edgeskin.data import load_images, open_dataset
    from edgeskin.runtime import PreprocessConfig

    return load_images(open_dataset(SAMPLES, "test"), PreprocessConfig(), progress=False)


ALL_RECIPES = "fp32,fp16,dynamic,int8,int8-mixed"


@pytest.fixture(scope="session")
def converted(tmp_path_factory, real_data_dir):
    """`edgeskin convert --target all` on the demo student, once per session (conversions take
    minutes here): (out folder, manifest, exit code, stderr)."""
    from tests.helpers import has_real_data, run_cli

    if not has_real_data(real_data_dir):
        pytest.skip("platform fact: int8 calibration and the val split need ../shared/data/isic-public beside the checkout")
    cwd = tmp_path_factory.mktemp("convert")
    out = cwd / "dist"
    # a relative --out from another working directory, as `make demo` runs it
    done = run_cli("convert", "--target", "all", "--recipes", ALL_RECIPES, "--data", real_data_dir, "--out", "dist", cwd=cwd)
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
