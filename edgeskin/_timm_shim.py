"""Make `import timm` work with the CPU torch wheel and PyPI's CUDA-linked torchvision.

timm imports torchvision; PyPI's torchvision wheels are built against CUDA torch, so with the
CPU torch its compiled ops do not load, and `torchvision/_meta_registrations.py` then fails on
`register_fake("torchvision::nms")` with "operator torchvision::nms does not exist". Defining
the two operator schemas that file needs (nms, qnms) before the import lets torchvision, and so
timm, import. torchvision's compiled ops stay unusable; edgeskin never calls them.
Where torchvision loads normally, this does nothing.
"""

from __future__ import annotations

import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library registration alive for the process


def _define_missing_schemas() -> None:
    global _library
    import torch

    missing = [name for name in _SCHEMAS if not torch._C._dispatch_has_kernel(f"torchvision::{name}")]
    if not missing or _library is not None:
        return
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        try:
            _library.define(_SCHEMAS[name])
        except RuntimeError:  # defined meanwhile (e.g. torchvision's own ops loaded)
            pass


def import_timm():
    """Import and return timm, applying the torchvision shim only when it is needed."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _define_missing_schemas()
    import timm

    return timm
