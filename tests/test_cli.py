"""The `edgeskin` command as a user runs it: outputs, and one-line errors for bad input."""

from __future__ import annotations

import pickle
import shutil

import pytest

from edgeskin.checkpoint import save_checkpoint
from tests.conftest import DEMO_STUDENT, perturbed_model
from tests.helpers import assert_one_line_error, run_cli, run_console
from tests.test_checkpoint import Payload


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return save_checkpoint(perturbed_model("skindistilvit-ti1"), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def test_eval_prints_bma_recall_and_melanoma_numbers(tiny_checkpoint, bundled_dir, tmp_path):
    done = run_cli("eval", "--checkpoint", tiny_checkpoint, "--data", bundled_dir, "--split", "test", "--json", tmp_path / "r.json")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "BMA " in out and "melanoma sensitivity" in out and "MEL " in out and "49 images" in out
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 49 and 0 <= report["bma"] <= 1 and sum(report["support"].values()) == 49


def test_info_describes_checkpoint(tiny_checkpoint):
    done = run_cli("info", tiny_checkpoint)
    assert done.returncode == 0, done.stderr
    assert "skindistilvit-ti1" in done.stdout and "MEL, NV, BCC" in done.stdout


def test_missing_checkpoint(bundled_dir, tmp_path):
    assert_one_line_error(run_cli("eval", "--checkpoint", tmp_path / "gone.safetensors", "--data", bundled_dir),
                          "gone.safetensors", "no such checkpoint")


def test_pickle_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Payload()))
    assert_one_line_error(run_cli("info", path), "evil.pt", "not a plain state dict")


def test_checkpoint_whose_config_does_not_match(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    good = save_checkpoint(perturbed_model("skindistilvit-ti1"), tmp_path / "good.safetensors")
    with safe_open(str(good), "pt") as h:
        meta, tensors = h.metadata(), {k: h.get_tensor(k) for k in h.keys()}
    config = json.loads(meta["edgeskin.config"])
    config["embed_dim"], config["num_heads"] = 384, 6
    meta["edgeskin.config"] = json.dumps(config)
    save_file(tensors, str(tmp_path / "mismatch.safetensors"), metadata=meta)
    assert_one_line_error(run_cli("info", tmp_path / "mismatch.safetensors"), "mismatch.safetensors", "does not match weights")


def _dataset(tmp_path, samples_dir, csv_text, corrupt=None):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("ISIC_0000002.jpg", "ISIC_0000015.jpg"):
        shutil.copy(samples_dir / name, images / name)
    if corrupt:  # a real JPEG cut off mid-stream, as an interrupted copy leaves it
        data = (samples_dir / "ISIC_0000013.jpg").read_bytes()
        (images / corrupt).write_bytes(data[: len(data) // 2])
    (tmp_path / "labels.csv").write_text(csv_text)
    return tmp_path


def test_corrupt_image(tmp_path, samples_dir, tiny_checkpoint):
    data = _dataset(tmp_path, samples_dir, "image,label\nISIC_0000002.jpg,MEL\nbad.jpg,NV\n", corrupt="bad.jpg")
    assert_one_line_error(run_cli("eval", "--checkpoint", tiny_checkpoint, "--data", data, "--split", "all"),
                          "bad.jpg", "corrupt or truncated")


def test_csv_unknown_label(tmp_path, samples_dir, tiny_checkpoint):
    data = _dataset(tmp_path, samples_dir, "image,label\nISIC_0000002.jpg,MEL\nISIC_0000015.jpg,MOLE\n")
    assert_one_line_error(run_cli("eval", "--checkpoint", tiny_checkpoint, "--data", data), "labels.csv", "unknown label 'MOLE'")


def test_csv_missing_column(tmp_path, samples_dir, tiny_checkpoint):
    data = _dataset(tmp_path, samples_dir, "file,label\nISIC_0000002.jpg,MEL\n")
    assert_one_line_error(run_cli("eval", "--checkpoint", tiny_checkpoint, "--data", data), "labels.csv", "missing column 'image'")


def test_bundled_demo_student_evaluates(bundled_dir):
    done = run_cli("eval", "--checkpoint", DEMO_STUDENT, "--data", bundled_dir, "--split", "test")
    assert done.returncode == 0, done.stderr
    assert "skindistilvit-ti6" in done.stdout and "BMA " in done.stdout


def test_cascade_starts_at_the_teachers_depth_and_distills_each_from_the_previous(tmp_path, bundled_dir):
    """As the authors ran it: the teacher's own depth first (the paper's best model, at 12 of 12 blocks)."""
    teacher = save_checkpoint(perturbed_model("skindistilvit-ti2"), tmp_path / "t.safetensors")
    done = run_cli("cascade", "--teacher", teacher, "--down-to", "1", "--data", bundled_dir, "--train-split", "val",
                   "--val-split", "val", "--epochs", "1", "--max-steps", "1", "--batch-size", "8", "--out", tmp_path / "c")
    assert done.returncode == 0, done.stderr
    from edgeskin.model_loading import load_checkpoint

    d2 = load_checkpoint(tmp_path / "c" / "depth02" / "best.safetensors")
    d1 = load_checkpoint(tmp_path / "c" / "depth01" / "best.safetensors")
    assert (d2.config.depth, d1.config.depth) == (2, 1)
    assert d2.provenance["teacher_sha256"] == load_checkpoint(teacher).source_sha256  # depth 2 from the 2-block teacher
    assert d1.provenance["teacher_sha256"] == d2.source_sha256  # depth 1 was distilled from depth 2
    assert_one_line_error(run_cli("cascade", "--teacher", teacher, "--down-to", "3", "--out", tmp_path / "x"), "--down-to 3")


def test_eval_all_exits_prints_per_exit_bma(tmp_path, bundled_dir):
    ckpt = save_checkpoint(perturbed_model("skindistilvit-ti2-exits"), tmp_path / "e.safetensors")
    done = run_cli("eval", "--checkpoint", ckpt, "--data", bundled_dir, "--all-exits")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line[:1] in "12" and len(line.split()) == 3]
    assert [r[0] for r in rows] == ["1", "2"]


def test_console_script_refuses_a_calibration_folder_that_does_not_exist(tmp_path):
    """The installed `edgeskin` script, as a shell runs it: exit 2, one line naming the path."""
    done = run_console("convert", "--calib", "/nonexistent", "--out", tmp_path / "o")
    assert_one_line_error(done, "/nonexistent", "--calib")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["info", DEMO_STUDENT], ["convert", "--out", "never"], ["eval", "--checkpoint", DEMO_STUDENT],
                                  ["bench", "none.tflite"], ["parity", "none"], ["train", "--arch", "skindistilvit-ti2", "--out", "never"]])
def test_without_the_convert_extra_a_command_says_which_extra(argv, tmp_path):
    """A torch-free install (numpy + Pillow + edgeskin[pi]): one line naming the extra, no traceback."""
    import subprocess
    import sys

    script = ("import sys; sys.modules['torch'] = None\nfrom edgeskin.cli import main\nsys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"edgeskin: error: `edgeskin {argv[0]}` needs the [convert] extra (torch is not installed): "
                                   "pip install 'edgeskin[convert]'")
    assert not (tmp_path / "never").exists()


def test_the_convert_modules_table_names_every_convert_requirement():
    import tomllib

    from edgeskin.cli import CONVERT_MODULES
    from tests.conftest import REPO

    requirements = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["convert"]
    names = {r.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower() for r in requirements}
    import_names = {"scikit-learn": "sklearn", "typing-extensions": None}
    expected = {import_names.get(n, n.replace("-", "_")) for n in names} - {None}
    assert expected == set(CONVERT_MODULES)


def test_a_fifo_as_classes_file_is_refused_unopened(tmp_path):
    import os

    fifo = tmp_path / "classes.txt"
    os.mkfifo(fifo)
    assert_one_line_error(run_cli("info", DEMO_STUDENT, "--classes-file", fifo), f"{fifo}: is a named pipe (FIFO), not a file")


def test_paper_preset_reaches_the_training_loop_and_flags_override_it(tmp_path, bundled_dir):
    done = run_cli("train", "--arch", "skindistilvit-ti1", "--preset", "paper", "--lr", "1e-3", "--data", bundled_dir,
                   "--train-split", "val", "--val-split", "val", "--max-steps", "1", "--batch-size", "8", "--out", tmp_path / "p")
    assert done.returncode == 0, done.stderr
    from edgeskin.model_loading import load_checkpoint

    settings = load_checkpoint(tmp_path / "p" / "best.safetensors").provenance["settings"]
    assert (settings["weight_decay"], settings["warmup_epochs"], settings["clip_grad"], settings["epochs"]) == (0.0, 0.0, 1.0, 60)
    assert settings["lr"] == 1e-3  # given on the command line: the preset does not replace it
