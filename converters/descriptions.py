"""What an artifact says about itself in its format's standard fields (Core ML's description and
versionString, TFLite Metadata's name, version and description): one source for both formats."""

from __future__ import annotations

import re

from edgeskin.runtime.errors import EdgeskinError, EdgeskinTypeError
from edgeskin.runtime.metadata import ArtifactMetadata

AUTHOR = "edgeskin (SkinDistilViT, arXiv 2308.08669)"
LICENSE = "Weights: see the source checkpoint's model card. Demonstration models: not for clinical use."
VERSION_DIGITS = 12  # of the source checkpoint's sha256: a short, stable name for the weights the artifact holds
DESCRIPTION = ("Skin-lesion classifier {model}, exit {exit}, recipe {recipe}; classes: {classes}. Input: RGB image, "
               "{size}x{size}, pixel values 0-255 (normalization is inside the model). Outputs: {outputs}. "
               "Not a medical device: not for clinical use without validation.")


VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def check_model_version(version: object) -> str:
    """A version a user gives: what app stores and Xcode show as is, so letters, digits and . _ + - only."""
    if not isinstance(version, str):
        raise EdgeskinTypeError(f"model version must be a string, got {type(version).__name__}")
    if not VERSION_PATTERN.fullmatch(version):
        raise EdgeskinError(f"--model-version {version!r}: use 1 to 64 letters, digits and . _ + - (e.g. 1.2.0), "
                            "starting with a letter or digit")
    return version


def model_version(metadata: ArtifactMetadata) -> str:
    """The version the user gave (--model-version), else the first digits of the source checkpoint's
    sha256: two artifacts of the same weights share a version and retrained weights get a new one."""
    return metadata.model_version or metadata.source_checkpoint_sha256[:VERSION_DIGITS] or "unversioned"


def model_name(metadata: ArtifactMetadata) -> str:
    return f"{metadata.model} exit {metadata.exit} {metadata.recipe}"


def description(metadata: ArtifactMetadata, outputs: list[str]) -> str:
    """One line (Xcode's model summary, TFLite Metadata's description): model, exit, recipe,
    classes, input, the outputs by the names this format gives them, and the clinical caveat."""
    text = DESCRIPTION.format(model=metadata.model, exit=metadata.exit, recipe=metadata.recipe,
                              classes=", ".join(metadata.class_names), size=metadata.contract.preprocess.size,
                              outputs=", ".join(outputs))
    return " ".join(text.split())  # class names are the checkpoint's: no line break of theirs gets in
