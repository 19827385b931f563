"""edgeskin: SkinDistilViT skin-lesion classifiers from PyTorch to verified edge artifacts.

Kept import-light on purpose: `import edgeskin` pulls in neither torch nor numpy. The public API
(edgeskin.api) is exposed lazily: `edgeskin.convert(...)`, `edgeskin.verify(...)`,
`edgeskin.load(...)` import the torch side only when called.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["convert", "verify", "load", "load_model", "Conversion", "ArtifactCheck", "EdgeskinError"]


def __getattr__(name: str):
    if name == "EdgeskinError":
        from edgeskin.runtime.errors import EdgeskinError

        return EdgeskinError
    if name == "ArtifactCheck":  # the result type of convert and verify alike
        from edgeskin.verification import ArtifactCheck

        return ArtifactCheck
    if name in __all__:
        from edgeskin import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgeskin' has no attribute {name!r}")
