"""Shared fixtures: real images (EDGESKIN_DATA / ../shared / bundled samples) and small seeded models."""

from __future__ import annotations

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


def perturbed_model(arch: str, seed: int = 0):
    """A registry model with seeded, perturbed weights (see edgeskin.models.seeded_weights)."""
    import torch

    from edgeskin.models import build_model, config_for, seeded_weights

    torch.manual_seed(seed)
    return seeded_weights(build_model(config_for(arch)), seed)


@pytest.fixture
def tiny_model():
    return perturbed_model("skindistilvit-ti2")
