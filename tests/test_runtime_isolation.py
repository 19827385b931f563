"""The runtime (and the Pi script, edgeskin.runtime.pi) imports without torch, TensorFlow or the rest of edgeskin."""

from __future__ import annotations

import subprocess
import sys

BLOCKER = r"""
import sys
BLOCKED = ("torch", "tensorflow", "timm", "onnx2tf", "keras", "tf_keras", "torchvision")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {name}")
sys.meta_path.insert(0, Block())
import edgeskin.runtime as rt
import edgeskin.runtime.pi, edgeskin.runtime.reporting  # the Pi script's modules
pixels = rt.preprocess(sys.argv[1])
assert pixels.shape == (224, 224, 3)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not heavy, heavy
print("ok")
"""


def test_runtime_imports_with_torch_and_tensorflow_blocked(samples_dir):
    done = subprocess.run([sys.executable, "-c", BLOCKER, str(samples_dir / "ISIC_0000002.jpg")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_blocker_really_blocks():
    done = subprocess.run([sys.executable, "-c", BLOCKER.split("import edgeskin")[0] + "import torch"], capture_output=True, text=True)
    assert done.returncode != 0 and "blocked for this test: torch" in done.stderr
