"""SkinDistilViT models: configurations, the SkinViT module and its export wrapper."""

from .config import ISIC_CLASSES, ModelConfig, available_models, config_for
from .skinvit import Deployable, ExitHead, SkinViT, build_model, deployable, seeded_weights

__all__ = [
    "ISIC_CLASSES",
    "Deployable",
    "ExitHead",
    "ModelConfig",
    "SkinViT",
    "available_models",
    "build_model",
    "config_for",
    "deployable",
    "seeded_weights",
]
