"""FLOPs counted from each artifact's graph agree with PyTorch's own counter, and the CPU's matmul
peak is measured (the physical floor `edgeskin bench` reads latency against)."""

from __future__ import annotations

import torch

import edgeskin
from edgeskin.flops import artifact_flops, torch_flops
from edgeskin.models import deployable
from edgeskin.peak import cpu_flags, measure_peak
from tests.conftest import BUNDLED, perturbed_model


def test_every_format_counts_what_pytorch_counts(tmp_path):
    model = perturbed_model("skindistilvit-ti2")
    expected = torch_flops(deployable(model).eval(), torch.rand(1, 3, 224, 224) * 255)
    # ti2 (2 blocks of 192): patch embedding, qkv, attention, projection, MLP, head
    assert 0.4e9 < expected < 0.5e9
    for target, recipe in (("tflite", "fp32"), ("tflite", "int8-mixed"), ("onnx", "fp32"), ("coreml", "w8")):
        result = edgeskin.convert(model, target=target, recipes=[recipe], out=tmp_path / f"{target}-{recipe}", data=BUNDLED)
        assert artifact_flops(result.artifacts[0].path) == expected, (target, recipe)


def test_the_peak_is_measured_at_the_thread_count_asked_for():
    peak = measure_peak(1)
    assert peak.threads == 1 and peak.fp32_gflops > 1 and peak.flags == cpu_flags()
    assert peak.for_compute("fp32") == peak.fp32_gflops and peak.for_compute("int16") is None
    assert "GFLOP/s" in peak.sentence() and torch.get_num_threads() >= 1
