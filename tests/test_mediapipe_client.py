"""MediaPipe Tasks' ImageClassifier (mediapipe 1.2, the [dev] extra) loads every TFLite recipe of the
session's demo conversion as it is and agrees with edgeskin's runtime on >= 32 real images.

Both are fed the same preprocessed 224x224 pixels. A recipe whose input is int8 or int16 (full int8,
w8a16) is refused by MediaPipe, which takes uint8 or float32 images only: that refusal is asserted
too, so a change on either side shows up here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeskin.image_sources import ImageSource
from edgeskin.runtime.formats import read_artifact_metadata
from tests.conftest import REPO

pytest.importorskip("mediapipe")

IMAGES = 32
MEDIAPIPE_INPUTS = ("float32", "uint8")
# Measured: 0.0 for every float-input recipe (the same TFLite kernels on the same pixels); the
# bound leaves room for a MediaPipe whose bundled TFLite differs from ai-edge-litert's
MAX_SCORE_DIFFERENCE = 1e-4


@pytest.fixture(scope="module")
def tflite_files(converted):
    out, manifest, _, stderr = converted
    files = [(out / a["file"], a) for a in manifest["artifacts"] if a["target"] == "tflite"]
    assert {a["recipe"] for _, a in files} == {"fp32", "fp16", "dynamic", "int8", "int8-mixed", "w8a16"}, stderr
    return files


@pytest.fixture(scope="module")
def pixels(real_data_dir, tflite_files):
    from edgeskin.mediapipe_client import check_pixels

    config = read_artifact_metadata(tflite_files[0][0]).contract.preprocess
    pixels = check_pixels(ImageSource(real_data_dir, "given"), "test", 64, config)
    assert len(pixels) >= IMAGES
    return pixels


def test_image_classifier_agrees_with_edgeskin_on_every_recipe(tflite_files, pixels):
    from edgeskin.mediapipe_client import ClientRefused, compare

    for path, entry in tflite_files:
        if entry["input"]["dtype"] in MEDIAPIPE_INPUTS:
            result = compare(path, pixels)
            assert result.images == len(pixels)
            assert result.labels_match, entry["recipe"]
            assert result.top1_agreement == 1.0, (entry["recipe"], result)
            assert result.max_score_difference <= MAX_SCORE_DIFFERENCE, (entry["recipe"], result)
        else:
            with pytest.raises(ClientRefused, match="uint8/float32"):
                compare(path, pixels)


def test_bench_script_prints_a_row_per_recipe(converted):
    out = converted[0]
    done = subprocess.run([sys.executable, str(REPO / "bench" / "mediapipe_client.py"), str(out), "--images", "40"],
                          capture_output=True, text=True, timeout=600)
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[2:-1]}
    assert set(rows) == {"fp32", "fp16", "dynamic", "int8", "int8-mixed", "w8a16"}, done.stdout + done.stderr
    for recipe in ("fp32", "fp16", "dynamic", "int8-mixed"):
        assert "100.0% (40/40)" in rows[recipe] and rows[recipe].endswith("= classes"), rows[recipe]
    assert "refused:" in rows["int8"]
    assert done.returncode == 1  # a refused file is not a pass
