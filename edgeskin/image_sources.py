"""Where a command's real images come from: one rule, in one place, always named in the output.

A folder the user names is used or refused, never replaced by another; only when nothing is named
does the search go on: $EDGESKIN_DATA, then ../shared/data/isic-public beside a source checkout,
then the CC0 set bundled inside the package (enough to calibrate int8 and give a verdict).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgeskin.runtime.errors import EdgeskinError

PACKAGE = Path(__file__).resolve().parent
SOURCE_CHECKOUT = PACKAGE.parent
SHARED_DATA = SOURCE_CHECKOUT.parent / "shared" / "data" / "isic-public"
BUNDLED_IMAGES = PACKAGE / "assets" / "isic-cc0"
BUNDLED_LABEL = "bundled"


@dataclass(frozen=True)
class ImageSource:
    """A resolved image folder (or labels CSV) and why it was chosen."""

    root: Path
    origin: str  # "given" (a flag), "$EDGESKIN_DATA", "shared" (beside the checkout) or "bundled"

    @property
    def bundled(self) -> bool:
        """The packaged set, whether found by the rule or named by its path."""
        return self.root.resolve() == BUNDLED_IMAGES.resolve()

    @property
    def label(self) -> str:
        """How reports name the set: 'bundled' for the packaged CC0 set, else its path."""
        return BUNDLED_LABEL if self.bundled else str(self.root)


def _shared_beside_checkout() -> Path | None:
    in_checkout = (SOURCE_CHECKOUT / "pyproject.toml").is_file()
    return SHARED_DATA if in_checkout and (SHARED_DATA / "labels.csv").is_file() else None


def resolve_images(given: str | os.PathLike | None, flag: str = "--data") -> ImageSource:
    """The path given, else $EDGESKIN_DATA, else ../shared/data/isic-public beside a source
    checkout, else the bundled set. A path the user gave (flag or variable) that does not exist is
    an error, never a reason to fall back."""
    if given is not None:
        path = Path(given)
        if not path.exists():
            raise EdgeskinError.about(path, f"no such image folder or labels file (given as {flag})")
        return ImageSource(path, "given")
    env = os.environ.get("EDGESKIN_DATA")
    if env:
        path = Path(env)
        if not path.exists():
            raise EdgeskinError.about(path, "no such image folder or labels file (given as $EDGESKIN_DATA)")
        return ImageSource(path, "$EDGESKIN_DATA")
    shared = _shared_beside_checkout()
    if shared is not None:
        return ImageSource(shared, "shared")
    return ImageSource(BUNDLED_IMAGES, "bundled")


def bundled_images() -> ImageSource:
    return ImageSource(BUNDLED_IMAGES, "bundled")


def describe(role: str, count: int, dataset_name: str, note: str = "") -> str:
    """The line every command prints for each image set it uses, e.g. 'verdict: 40 images of bundled:val'."""
    return f"{role}: {count} images of {dataset_name}" + (f" ({note})" if note else "")
