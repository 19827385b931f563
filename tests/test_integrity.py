"""A model file is vouched for before a runtime touches it in-process (runtime/integrity.py), and
its embedded metadata is checked against the graph when it loads (runtime/graph_check.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from edgeskin.runtime import EdgeskinError, integrity, load
from tests import hostile_files as hf
from tests.conftest import SAMPLES

GOOD_IMAGE = sorted(SAMPLES.glob("*.jpg"))[0]

@pytest.mark.parametrize(("child", "message"), [
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "the model runtime crashed (SIGSEGV) loading this file: it is corrupt or damaged"),
    ("import os; os.abort()", "the model runtime crashed (SIGABRT) loading this file: it is corrupt or damaged"),
    ("import time; time.sleep(60)", "the model runtime did not finish loading this file within 2 s"),
    ("import sys; print('native chatter'); sys.exit(2)", "the model runtime failed on this file (exit code 2)"),
])
def test_a_runtime_that_dies_on_a_file_costs_one_line_not_the_process(tiny_tflite, tmp_path, monkeypatch, child, message):
    """What the child probe is for: ai-edge-litert 2.3 survived every byte flip tried here (480 in the graph
    tables), but a TFLite interpreter trusts its flatbuffer, and older runtimes (the Pi's) crash on some."""
    model = tmp_path / "lone.tflite"
    shutil.copyfile(tiny_tflite, model)
    monkeypatch.setenv(integrity.CACHE_ENV, str(tmp_path / "cache"))  # the conversion's own check remembered this file
    monkeypatch.setattr(integrity, "child_command", lambda path, checker: [sys.executable, "-c", child])
    monkeypatch.setattr(integrity, "PROBE_TIMEOUT_S", 2)
    with pytest.raises(EdgeskinError) as raised:
        load(model)
    assert str(raised.value) == f"{model}: {message}"


def test_the_real_child_reports_a_file_the_runtime_refuses(tiny_tflite, tmp_path):
    model = tmp_path / "cut.tflite"
    data = tiny_tflite.read_bytes()
    model.write_bytes(data[:4096] + data[-200_000:])  # the metadata reader's tables survive, the graph does not
    with pytest.raises(EdgeskinError) as raised:
        integrity.verify(model)
    assert str(raised.value).startswith(f"{model}: ") and "\n" not in str(raised.value)


def test_a_file_changed_after_conversion_is_refused_by_its_manifest(tiny_tflite, tmp_path):
    folder = tmp_path / "dist"
    shutil.copytree(tiny_tflite.parent, folder)
    model = folder / tiny_tflite.name
    assert integrity.verify(model) == "manifest"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights: loads fine, answers differently
    model.write_bytes(bytes(data))
    with pytest.raises(EdgeskinError, match=rf"^{model}: sha256 [0-9a-f]{{16}}\.\.\. differs from the [0-9a-f]{{16}}\.\.\. that "
                       r"manifest\.json records: the file changed after edgeskin wrote and verified it$"):
        load(model)


def test_a_lone_file_is_probed_once_then_remembered_per_runtime_version(tiny_tflite, tmp_path, monkeypatch):
    model = tmp_path / "lone.tflite"
    shutil.copyfile(tiny_tflite, model)  # no manifest beside it
    monkeypatch.setenv(integrity.CACHE_ENV, str(tmp_path / "cache"))
    assert integrity.verify(model) == "probe"
    assert integrity.verify(model) == "cache"
    monkeypatch.setattr(integrity, "_runtime_versions", lambda: "ai-edge-litert=9.9.9")
    assert integrity.verify(model) == "probe"  # another runtime: the file is checked again
    assert load(model, verify=False).predict([GOOD_IMAGE])[0].label in hf.CLASSES


def _with_metadata(tiny_tflite: Path, tmp_path: Path, **changes) -> Path:
    return hf.rewrite_tflite_metadata(tiny_tflite, tmp_path / "edited.tflite", **changes)


@pytest.mark.parametrize(("changes", "message"), [
    ({"class_names": ["MEL", "NV"]}, "metadata names 2 classes but output 0 (probabilities) has 8 values"),
    ({"input": {"shape": (1, 160, 160, 3)}}, "metadata input 1x160x160x3 NHWC does not hold 224x224 RGB images"),
    ({"input": {"layout": "NCHW"}}, "metadata input 1x224x224x3 NCHW does not hold 224x224 RGB images"),
    ({"input": {"dtype": "int8"}}, "metadata says input int8, the graph takes float32"),
    ({"outputs": ["logits", "probabilities"]}, "the output named probabilities is not a probability vector on a probe image"),
    ({"outputs": ["probabilities", "scores"]}, "metadata output roles ['probabilities', 'scores']: expected each of"),
    ({"outputs": ["probabilities"]}, "model has 2 outputs, metadata names 1"),
])
def test_metadata_that_contradicts_the_graph_is_refused_at_load(tiny_tflite, tmp_path, changes, message):
    model = _with_metadata(tiny_tflite, tmp_path, **changes)
    with pytest.raises(EdgeskinError) as raised:
        load(model)
    assert str(raised.value).startswith(f"{model}: {message}"), str(raised.value)


def test_the_same_file_with_true_metadata_loads(tiny_tflite, tmp_path):
    model = _with_metadata(tiny_tflite, tmp_path, recipe="fp32")
    assert len(load(model).predict([GOOD_IMAGE])[0].probabilities) == 8


def test_a_fifo_as_a_model_is_refused_unopened(tmp_path):
    import os

    fifo = tmp_path / "m.tflite"
    os.mkfifo(fifo)
    with pytest.raises(EdgeskinError, match=r"m\.tflite: is a named pipe \(FIFO\), not a file$"):
        load(fifo)


def test_a_damaged_manifest_vouches_for_nothing(tiny_tflite, tmp_path):
    folder = tmp_path / "dist"
    shutil.copytree(tiny_tflite.parent, folder)
    (folder / "manifest.json").write_text(json.dumps({"artifacts": "not a list"}))
    assert integrity.listed_sha256(folder / tiny_tflite.name) is None
    assert integrity.verify(folder / tiny_tflite.name) in ("probe", "cache")
