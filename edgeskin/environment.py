"""What a number was measured on: library versions and a machine fingerprint (stdlib only).

The benchmark worker imports this without torch, so it must stay dependency-free (torch is
imported inside use_torch_threads only).
"""

from __future__ import annotations

import os
import platform
from importlib import metadata as importlib_metadata

VERSIONED = ("edgeskin", "torch", "timm", "numpy", "onnx", "litert-torch", "ai-edge-quantizer", "onnx2tf", "tensorflow",
             "ai-edge-litert", "tflite-runtime",
             "onnxruntime", "coremltools")


def library_versions(names=VERSIONED) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def use_torch_threads(count: int | None = None) -> None:
    """torch's CPU threads for this process: `count`, else every core this process may use."""
    import torch

    torch.set_num_threads(count or usable_cores())


def fingerprint() -> dict:
    return {"cpu": cpu_model(), "machine": platform.machine(), "cores": usable_cores(), "os": platform.platform(),
            "python": platform.python_version(), "libraries": library_versions()}
