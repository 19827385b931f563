"""The second TFLite route, onnx2tf in its own environment (`make test-onnx2tf` builds it), against
the default route: same recipes, same gates, same manifest, one parity table for both."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeskin.converters.recipes import RECIPES
from edgeskin.converters.tflite import tensor_types
from edgeskin.runtime.formats import read_artifact_metadata
from tests.helpers import run_cli, run_console

pytestmark = pytest.mark.onnx2tf
RECIPES_BOTH = "fp32,dynamic,int8-mixed"


@pytest.fixture(scope="module")
def both_routes(tmp_path_factory):
    """The demo student through each route (images by the default rule): {route: (folder, stderr)}."""
    import json

    cwd = tmp_path_factory.mktemp("routes")
    folders = {}
    for route in ("onnx2tf", "litert"):
        done = run_console("convert", "--route", route, "--recipes", RECIPES_BOTH, "--out", route, cwd=cwd, timeout=1200)
        assert done.returncode == 0, done.stderr
        folders[route] = (cwd / route, json.loads((cwd / route / "manifest.json").read_text()), done.stderr)
    return folders


def test_onnx2tf_files_pass_the_same_gates_and_say_how_they_were_made(both_routes):
    folder, manifest, stderr = both_routes["onnx2tf"]
    assert [a["recipe"] for a in manifest["artifacts"]] == RECIPES_BOTH.split(",")
    for art in manifest["artifacts"]:
        assert art["verdict"] == "pass" and art["route"] == "onnx2tf", art
        meta = read_artifact_metadata(folder / art["file"])
        assert meta.route == "onnx2tf" and {"onnx2tf", "tensorflow"} <= set(meta.converter), meta.converter
        declared, found = RECIPES[art["recipe"]].tflite, tensor_types((folder / art["file"]).read_bytes())
        assert (found.linear_weights, found.linear_activations, found.io) == (
            {declared.linear_weights}, {declared.linear_activations}, {declared.io}), (art["recipe"], found)
    # the subprocess is never silent: its stages are announced and timed
    assert "onnx2tf: converting (float32, float16, dynamic-range) ..." in stderr
    assert "int8-mixed: TensorFlow calibrating on" in stderr


def test_parity_puts_both_routes_side_by_side_in_one_table(both_routes):
    done = run_cli("parity", both_routes["onnx2tf"][0], both_routes["litert"][0], "--split", "test")
    assert done.returncode == 0, done.stderr
    header, *rows = [line.split() for line in done.stdout.splitlines() if "tflite" in line or line.startswith("artifact")]
    assert header[:3] == ["artifact", "route", "recipe"]
    assert sorted((row[1], row[2]) for row in rows) == sorted(
        (route, recipe) for route in ("onnx2tf", "litert-torch") for recipe in RECIPES_BOTH.split(","))
    assert all(row[-1] == "pass" for row in rows), done.stdout


def _workers() -> list[str]:
    """Running onnx2tf worker processes (their command lines), from /proc."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "onnx2tf_worker.py" in text:
            found.append(text)
    return found


def test_a_terminated_conversion_takes_its_onnx2tf_worker_with_it(tmp_path):
    assert not _workers(), "an onnx2tf worker is already running"
    proc = subprocess.Popen([sys.executable, "-m", "edgeskin.cli", "convert", "--route", "onnx2tf", "--recipes", "fp32",
                             "--out", tmp_path / "dist"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not _workers():
        time.sleep(0.2)
    assert _workers(), "the worker never started"
    time.sleep(10)  # inside onnx2tf now, which would run on for a minute or more on its own
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    deadline = time.time() + 30
    while time.time() < deadline and _workers():
        time.sleep(0.2)
    assert not _workers() and not (tmp_path / "dist").exists() and not list(tmp_path.glob(".dist.*"))
