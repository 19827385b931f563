"""In the project's venv, timm and transformers import with nothing imported before (the .pth hook
that `make install` writes; see edgeskin/_timm_shim.py), and the hook itself imports no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("statement", [
    "import timm; timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=5)",
    "from transformers import ViTForImageClassification",
    "import importlib.util; importlib.util.find_spec('torchvision'); import torchvision.transforms",
])
def test_imports_work_in_a_fresh_interpreter(statement):
    done = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_startup_hook_is_installed_and_imports_nothing_heavy():
    script = ("import sys; from edgeskin._timm_shim import TorchvisionFinder; "
              "print(any(isinstance(f, TorchvisionFinder) for f in sys.meta_path), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_the_standalone_hook_works_where_edgeskin_is_not_installed(tmp_path):
    """`make install-timmx`'s environment has no edgeskin: the shim goes in as a copy of its own file."""
    from edgeskin import _timm_shim

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    python = tmp_path / "venv" / "bin" / "python"
    done = subprocess.run([str(python), _timm_shim.__file__, "--standalone"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0 and "startup hook written" in done.stdout, done.stderr
    script = ("import sys; print([type(f).__name__ for f in sys.meta_path][:1], 'torch' in sys.modules, "
              "__import__('importlib.util').util.find_spec('edgeskin') is None)")
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.stdout.split() == ["['TorchvisionFinder']", "False", "True"], done.stderr
