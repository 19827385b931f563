"""Make `import torchvision` (so `import timm`, `import transformers`) work with the CPU torch wheel.

PyPI's torchvision wheels are built against CUDA torch, so with the CPU torch its compiled ops do
not load, and `torchvision/_meta_registrations.py` then fails on `register_fake("torchvision::nms")`
with "operator torchvision::nms does not exist". Defining the two operator schemas that file needs
(nms, qnms) before a second import lets torchvision, and so timm and transformers, import.
torchvision's compiled ops stay unusable; edgeskin never calls them. Where torchvision loads
normally, nothing is defined.

Two ways in: edgeskin calls `import_timm()`; and `make install` writes a one-line .pth startup hook
into the venv (`install_hook`) that puts `TorchvisionFinder` on sys.meta_path, so a plain
`import timm` in the project's venv works with nothing imported before. The finder itself imports
nothing heavy: torch is touched only when something imports torchvision.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library registration alive for the process
HOOK_FILE = "edgeskin-torchvision-shim.pth"
HOOK_LINE = ("import importlib.util as _u; _u.find_spec('edgeskin') and "
             "__import__('edgeskin._timm_shim', fromlist=['x']).TorchvisionFinder.install()\n")


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


def import_torchvision():
    """Import torchvision as is; if its ops cannot load against this torch, define them and retry."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _define_missing_schemas()
        return importlib.import_module("torchvision")


def import_timm():
    """Import and return timm, applying the torchvision shim only when it is needed."""
    if "timm" not in sys.modules:
        import_torchvision()
    import timm

    return timm


class _ShimLoader(importlib.abc.Loader):
    def create_module(self, spec):
        TorchvisionFinder.importing = True  # the real import inside must use the normal finders
        try:
            return import_torchvision()  # the real module, imported with the shim when needed
        finally:
            TorchvisionFinder.importing = False

    def exec_module(self, module) -> None:
        pass  # already executed by create_module's import


class TorchvisionFinder(importlib.abc.MetaPathFinder):
    """Routes `import torchvision` through import_torchvision (the .pth startup hook). Probes such
    as importlib.util.find_spec also get this spec, so a later import still goes through it."""

    importing = False

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision" or self.importing or "torchvision" in sys.modules:
            return None
        return importlib.machinery.ModuleSpec(name, _ShimLoader())

    @classmethod
    def install(cls) -> None:
        if not any(isinstance(f, cls) for f in sys.meta_path):
            sys.meta_path.insert(0, cls())


def install_hook() -> str:
    """Write the startup hook into this interpreter's site-packages (called by `make install`)."""
    import sysconfig
    from pathlib import Path

    target = Path(sysconfig.get_paths()["purelib"]) / HOOK_FILE
    target.write_text(HOOK_LINE)
    return str(target)


STANDALONE_MODULE = "edgeskin_torchvision_shim"  # this file's copy in an environment without edgeskin


def install_standalone_hook() -> str:
    """The same hook for an environment without edgeskin (bench/peers.py's timmx environment): this
    file, which imports only the standard library, copied beside the .pth line that installs it."""
    import shutil
    import sysconfig
    from pathlib import Path

    folder = Path(sysconfig.get_paths()["purelib"])
    shutil.copyfile(__file__, folder / f"{STANDALONE_MODULE}.py")
    target = folder / HOOK_FILE
    target.write_text(f"import {STANDALONE_MODULE} as _s; _s.TorchvisionFinder.install()\n")
    return str(target)


if __name__ == "__main__":
    print(f"startup hook written: {install_standalone_hook() if '--standalone' in sys.argv else install_hook()}")
