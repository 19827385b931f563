"""A deliberately broken artifact fails its gate, exits non-zero, and the analysis names the block."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeskin.divergence import Stage, _first_jump, residual_stream
from tests.conftest import DEMO_STUDENT
from tests.helpers import run_cli


def _perturb_tflite_block(source, target, block: int, scale: float = 0.5) -> None:
    """Add noise to the qkv weights of one transformer block inside a converted .tflite file."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(source.read_bytes()))
    graph = model.subgraphs[0]
    linear = [op for op in graph.operators if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == "FULLY_CONNECTED"]
    weights = graph.tensors[linear[4 * (block - 1)].inputs[1]]  # qkv, proj, fc1, fc2 per block, in execution order
    assert list(weights.shape) == [576, 192], weights.shape  # qkv of the ti6 student
    buffer = model.buffers[weights.buffer]
    values = np.frombuffer(bytes(buffer.data), dtype=np.float32).copy()
    values += np.random.default_rng(0).normal(0, scale * values.std(), values.shape).astype(np.float32)
    buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
    target.write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _perturb_onnx_block(source, target, block: int) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    found = next(i for i in model.graph.initializer if i.name.endswith(f"blocks.{block - 1}.norm1.weight"))
    values = numpy_helper.to_array(found) * np.random.default_rng(0).uniform(0.0, 2.0, found.dims).astype(np.float32)
    found.CopyFrom(numpy_helper.from_array(values, found.name))
    onnx.save(model, str(target))


@pytest.mark.parametrize(("suffix", "block"), [(".tflite", 3), (".onnx", 5)])
def test_weights_perturbed_after_conversion_are_located(converted, real_data_dir, tmp_path, suffix, block):
    out, _, _, _ = converted
    broken = tmp_path / f"skindistilvit-ti6-e6-fp32{suffix}"
    perturb = _perturb_tflite_block if suffix == ".tflite" else _perturb_onnx_block
    perturb(out / broken.name, broken, block)
    done = run_cli("parity", broken, "--reference", DEMO_STUDENT, "--data", real_data_dir, "--split", "test",
                   "--out", tmp_path / "report", "--no-bench")
    assert done.returncode == 1, done.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    entry = report["artifacts"][0]
    assert entry["verdict"] == "fail" and entry["failures"]
    assert entry["divergence"]["first_jump"] == f"block {block}"
    errors = {s["name"]: s["error"] for s in entry["divergence"]["stages"]}
    assert errors[f"block {block - 1}"] < 1e-5 < 1e-2 < errors[f"block {block}"]
    assert f"error starts at block {block}" in done.stdout
    assert f"FAILED {broken}" in done.stderr
    pictures = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert f"divergence-{broken.name}.png" in pictures and "accuracy-latency.png" not in pictures  # --no-bench: no latency plot


def test_an_artifact_not_listed_in_a_manifest_is_checked_without_one(converted, real_data_dir, tmp_path):
    out, _, _, _ = converted
    lone = tmp_path / "lone.tflite"
    shutil.copy(out / "skindistilvit-ti6-e6-fp16.tflite", lone)
    done = run_cli("parity", lone, "--reference", DEMO_STUDENT, "--data", real_data_dir, "--split", "val",
                   "--out", tmp_path / "r", "--no-bench")
    assert done.returncode == 0, done.stderr
    entry = json.loads((tmp_path / "r" / "report.json").read_text())["artifacts"][0]
    from edgeskin.data import open_dataset

    assert entry["manifest"] is None and entry["divergence"] is None
    assert entry["parity"]["n_images"] == len(open_dataset(real_data_dir, "val"))


def test_first_jump_rules():
    flat = [Stage("embedding", 2e-7), Stage("block 1", 3e-7), Stage("block 2", 0.05), Stage("block 3", 0.06), Stage("logits", 0.04)]
    assert _first_jump(flat)[0] == "block 2"
    assert _first_jump([Stage("embedding", 0.02), Stage("block 1", 0.05)])[0] == "embedding"
    assert _first_jump([Stage("embedding", 1e-7), Stage("block 1", 2e-7)])[0] == "none"
    gradual = [Stage("embedding", 4e-4), Stage("block 1", 8e-4), Stage("block 2", 1.5e-3), Stage("block 3", 2.5e-3)]
    name, text = _first_jump(gradual)
    assert name == "block 1" and "gradually" in text  # largest relative step: 4e-4 -> 8e-4


def test_residual_stream_follows_the_adds_that_consume_it():
    from edgeskin.divergence import _Op

    ops = [_Op("ADD", (0, 1), (2,)), _Op("MEAN", (2, 9), (3,)), _Op("FULLY_CONNECTED", (3, 8), (4,)),
           _Op("ADD", (2, 4), (5,)), _Op("ADD", (4, 7), (6,)), _Op("ADD", (6, 5), (10,))]
    shapes = {2: (1, 197, 8), 5: (1, 197, 8), 6: (1, 197, 8), 10: (1, 197, 8)}
    assert residual_stream(ops, shapes, {"MEAN"}, {"ADD"}) == [2, 5, 10]
