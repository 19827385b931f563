"""Bad input to `edgeskin parity` / `edgeskin bench`: one line naming the file and the problem."""

from __future__ import annotations

import csv as csv_module
from dataclasses import replace

import pytest

from edgeskin.checkpoint import save_checkpoint
from edgeskin.model_loading import load_checkpoint
from tests.conftest import DEMO_STUDENT
from tests.helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def artifact(converted):
    return converted[0] / "skindistilvit-ti6-e6-fp32.tflite"


def test_artifact_whose_labels_differ_from_the_reference(artifact, real_data_dir, tmp_path):
    loaded = load_checkpoint(DEMO_STUDENT)
    names = loaded.config.class_names
    loaded.model.config = replace(loaded.config, class_names=(names[1], names[0], *names[2:]))
    other = save_checkpoint(loaded.model, tmp_path / "swapped.safetensors")
    done = run_cli("parity", artifact, "--reference", other, "--data", real_data_dir, "--out", tmp_path / "r", "--no-bench")
    assert_one_line_error(done, str(artifact), "differ from the reference's")
    assert not (tmp_path / "r").exists()


def test_split_that_does_not_exist(artifact, real_data_dir, tmp_path):
    done = run_cli("parity", artifact, "--reference", DEMO_STUDENT, "--data", real_data_dir, "--split", "testing", "--no-bench",
                   "--out", tmp_path / "r")
    assert_one_line_error(done, "labels.csv", "no images in split 'testing'", "test, train, val")


def test_empty_split(artifact, samples_dir, bundled_dir, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("image,label,split\n")
    done = run_cli("parity", artifact, "--reference", DEMO_STUDENT, "--data", csv, "--split", "test", "--no-bench", "--out", tmp_path / "r")
    assert_one_line_error(done, str(csv), "lists no images")
    rows = list(csv_module.DictReader((bundled_dir / "labels.csv").open()))
    train_only = tmp_path / "train-only.csv"
    train_only.write_text("image,label,split\n" + "".join(f"{r['image']},{r['label']},train\n" for r in rows))
    (tmp_path / "images").symlink_to(samples_dir)
    done = run_cli("parity", artifact, "--reference", DEMO_STUDENT, "--data", train_only, "--split", "test", "--no-bench",
                   "--out", tmp_path / "r")
    assert_one_line_error(done, str(train_only), "no images in split 'test' (splits here: train)")


def test_missing_reference(artifact, real_data_dir, tmp_path):
    done = run_cli("parity", artifact, "--reference", tmp_path / "nope.safetensors", "--data", real_data_dir, "--no-bench")
    assert_one_line_error(done, "nope.safetensors", "no such reference checkpoint")
    lone = tmp_path / "lone.tflite"
    lone.write_bytes(artifact.read_bytes())
    done = run_cli("parity", lone, "--data", real_data_dir, "--no-bench")
    assert_one_line_error(done, "pass --reference")


def test_not_an_artifact_and_missing_artifact(real_data_dir, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert_one_line_error(run_cli("parity", text, "--reference", DEMO_STUDENT, "--no-bench"), str(text), "not an artifact")
    assert_one_line_error(run_cli("bench", tmp_path / "gone.tflite"), "gone.tflite", "no such artifact")
    assert_one_line_error(run_cli("parity", tmp_path, "--reference", DEMO_STUDENT), str(tmp_path), "no manifest.json")


def test_report_folder_that_is_something_else_is_not_overwritten(artifact, real_data_dir, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    done = run_cli("parity", artifact, "--reference", DEMO_STUDENT, "--data", real_data_dir, "--split", "val",
                   "--no-bench", "--out", precious)
    assert_one_line_error(done, str(precious), "not an edgeskin report folder")
    assert (precious / "thesis.tex").read_text() == "years of work"
