"""edgeskin-pi, the Raspberry Pi script: table, JSON lines, bad files, camera, one-line errors.

The emulated-arm64 comparison is `make device-test` (scripts/device_test.py), not part of this suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeskin.runtime.inputs import expand_inputs
from tests.test_runtime_isolation import BLOCKER

FP32 = "skindistilvit-ti6-e6-fp32.tflite"
CLASSES = {"MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"}


def run_pi(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeskin.runtime.pi", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def assert_pi_error(done, *fragments):
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeskin-pi: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="session")
def fp32(converted) -> Path:
    out, manifest, _, _ = converted
    files = {a["recipe"]: out / a["file"] for a in manifest["artifacts"] if a["target"] == "tflite"}
    return files["fp32"]


@pytest.fixture(scope="session")
def expected_labels(fp32, sample_images) -> dict[str, str]:
    """Top-1 per sample image from the in-process runtime, to check the script against."""
    from edgeskin.runtime import load

    predictor = load(fp32, threads=1)
    images = sample_images
    return {str(p): pred.label for p, pred in zip(images, predictor.predict(images), strict=True)}


def test_table_and_summary(fp32, sample_images, expected_labels):
    images = sample_images
    script = Path(sys.executable).with_name("edgeskin-pi")  # the console script a user runs
    # file names relative to the working folder, as a user types them (the table shortens long paths)
    done = subprocess.run([str(script), str(fp32), *(p.name for p in images)], capture_output=True, text=True, timeout=300,
                          cwd=images[0].parent)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # ai-edge-litert's load notice ("INFO: Created TensorFlow Lite XNNPACK delegate") is dropped
    lines = done.stdout.strip().splitlines()
    assert "recipe fp32, 8 classes" in lines[0] and "threads" in lines[0]
    assert lines[1].split()[:4] == ["image", "label", "prob", "top-3"] and lines[1].endswith("infer ms  total ms")
    rows = lines[2:-1]
    assert len(rows) == len(images) == 16
    for row, image in zip(rows, images, strict=True):
        fields = row.split()
        assert fields[0] == image.name and fields[1] == expected_labels[str(image)]
        probability, infer_ms, total_ms = float(fields[2]), float(fields[-2]), float(fields[-1])
        assert 1 / 8 < probability <= 1 and fields[3] == fields[1] and float(fields[4]) == probability
        assert 0 < infer_ms <= total_ms
    summary = lines[-1]
    assert summary.startswith("16 images, 0 failures, p50 latency ") and summary.split()[7] == "ms"
    assert float(summary.split()[6]) > 0


def test_json_lines_parse_with_every_field(fp32, sample_images, expected_labels):
    images = sample_images[:5]
    done = run_pi(fp32, *images, "--json", "--raw", "--top-k", "4", "--threads", "1")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 6 and set(records[-1]) == {"summary"}
    for record, image in zip(records[:-1], images, strict=True):
        assert record["image"] == str(image) and record["label"] == expected_labels[str(image)]
        ranked = [entry["probability"] for entry in record["top_k"]]
        assert len(ranked) == 4 and ranked == sorted(ranked, reverse=True) and record["probability"] == ranked[0]
        assert {entry["label"] for entry in record["top_k"]} <= CLASSES and record["latency_ms"] > 0
        assert len(record["probabilities"]) == 8 and abs(sum(record["probabilities"]) - 1) < 1e-4
        assert max(record["probabilities"]) == record["probability"]
    summary = records[-1]["summary"]
    assert (summary["images"], summary["classified"], summary["failures"], summary["threads"]) == (5, 5, 0, 1)
    assert summary["recipe"] == "fp32" and summary["p50_latency_ms"] > 0 and summary["p50_total_ms"] >= summary["p50_latency_ms"]
    assert summary["runtime"].startswith("ai-edge-litert") and summary["outputs"][0]["dtype"] == "float32"


def test_folder_with_a_corrupt_jpeg_and_a_text_file(fp32, sample_images, expected_labels, tmp_path):
    folder = tmp_path / "visit"
    (folder / "more").mkdir(parents=True)
    good = sample_images[:2]
    (folder / "a.jpg").write_bytes(good[0].read_bytes())
    (folder / "more" / "b.jpg").write_bytes(good[1].read_bytes())
    (folder / "cut.jpg").write_bytes(good[0].read_bytes()[:3000])  # a truncated JPEG
    (folder / "notes.txt").write_text("patient notes")  # not an image extension: skipped, counted
    (folder / "scan.png").write_text("not a PNG at all")  # an image extension: tried, fails
    (folder / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: skipped, counted
    done = run_pi(fp32, "visit", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    rows = done.stdout.strip().splitlines()[2:-1]
    assert [row.split()[0] for row in rows] == ["visit/a.jpg", "visit/cut.jpg", "visit/more/b.jpg", "visit/scan.png"]
    assert rows[0].split()[1] == expected_labels[str(good[0])] and rows[2].split()[1] == expected_labels[str(good[1])]
    assert "error: corrupt or truncated image" in rows[1] and "error: not an image Pillow can read" in rows[3]
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("4 images, 2 failures, p50 latency ")
    assert summary.endswith("; skipped 2 hidden or non-image files (.DS_Store, notes.txt)")
    records = [json.loads(line) for line in run_pi(fp32, folder, "--json").stdout.splitlines()]
    assert [("error" in r) for r in records[:-1]] == [False, True, False, True]
    assert records[-1]["summary"]["failures"] == 2 and "notes.txt" in records[-1]["summary"]["skipped"]
    strict = [json.loads(line) for line in run_pi(fp32, folder, "--json", "--strict").stdout.splitlines()]
    assert [Path(r["image"]).name for r in strict if "error" in r] == [".DS_Store", "cut.jpg", "notes.txt", "scan.png"]
    assert strict[-1]["summary"]["failures"] == 4 and strict[-1]["summary"]["skipped"] == ""


def test_special_entries_in_a_folder_are_reported_never_opened(fp32, sample_images, tmp_path):
    """FIFOs, broken links, link loops, a link to /dev/zero: each its own row and reason; nothing hangs."""
    folder = tmp_path / "visit"
    (folder / "x.jpg").mkdir(parents=True)  # a folder named like an image: walked, not an entry
    (folder / "x.jpg" / "inner.jpg").write_bytes(sample_images[0].read_bytes())
    (folder / "a.jpg").write_bytes(sample_images[1].read_bytes())
    os.mkfifo(folder / "pipe.jpg")
    os.mkfifo(folder / "pipe-no-extension")
    (folder / "gone.jpg").symlink_to(folder / "nowhere.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "labels.csv").write_text("image,label\n")
    done = run_pi(fp32, folder, "--json")
    records = [json.loads(line) for line in done.stdout.splitlines()]
    errors = {Path(r["image"]).name: r["error"] for r in records[:-1] if "error" in r}
    assert errors == {"gone.jpg": f"broken symbolic link (to {folder / 'nowhere.jpg'})", "loop.jpg": "symbolic link loop",
                      "pipe-no-extension": "is a named pipe (FIFO), not a file", "pipe.jpg": "is a named pipe (FIFO), not a file",
                      "zero.png": "is a character device, not a file"}
    assert sorted(Path(r["image"]).name for r in records[:-1] if "label" in r) == ["a.jpg", "inner.jpg"]
    assert records[-1]["summary"]["failures"] == 5 and "labels.csv" in records[-1]["summary"]["skipped"]
    assert done.returncode == 1 and done.stderr == ""
    # named directly, the same reasons (never "no such image file" for a link that exists)
    direct = run_pi(fp32, folder / "loop.jpg", folder / "pipe.jpg", folder / "x.jpg" / "inner.jpg", "--json")
    rows = [json.loads(line) for line in direct.stdout.splitlines()]
    assert [r.get("error") for r in rows[:-1]] == ["symbolic link loop", "is a named pipe (FIFO), not a file", None]


def test_expand_inputs_sorted_recursive_hidden_and_non_images_skipped(tmp_path):
    for name in ("b.jpg", "a/z.png", "a/.cache/x.jpg", ".hidden.jpg", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    single = tmp_path / "c.txt"
    found = expand_inputs([tmp_path, single])
    assert [e.path for e in found.entries] == [tmp_path / "a" / "z.png", tmp_path / "b.jpg", single]
    assert found.skipped == [tmp_path / ".hidden.jpg", tmp_path / "a" / ".cache", tmp_path / "c.txt"]
    assert found.skipped_note() == "skipped 3 hidden or non-image files (.hidden.jpg, .cache, c.txt)"


def test_the_loop_predict_and_pi_share_reports_bad_files_and_goes_on(samples_dir, tmp_path):
    """runtime.classify: a bad file and a runtime failing on invoke are each one failed item, in order."""
    from edgeskin.runtime.classify import Tally, classify
    from edgeskin.runtime.preprocess import PreprocessConfig

    class FailsOnSecondImage:  # stands in for a Predictor: its config, and a runtime that breaks once
        preprocess_config = PreprocessConfig()
        calls = 0

        def predict_pixels(self, pixels, top_k):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("invoke failed")
            return f"top-{top_k} of {pixels.shape}"

    for name in ("a.jpg", "b.png", "c.jpg", "d.jpg"):
        source = samples_dir / "ISIC_0000002.jpg"
        (tmp_path / name).write_bytes(b"notes" if name.endswith(".png") else source.read_bytes())
    tally = Tally()
    items = list(classify(FailsOnSecondImage(), expand_inputs([tmp_path]).sources(), top_k=2))
    for item in items:
        tally.add(item)
    assert [Path(i.name).name for i in items] == ["a.jpg", "b.png", "c.jpg", "d.jpg"]
    assert [i.failed for i in items] == [False, True, True, False]
    assert "not an image" in str(items[1].result) and "inference failed (invoke failed)" in str(items[2].result)
    assert items[0].result == "top-2 of (224, 224, 3)" and items[0].total_ms >= items[0].infer_ms > 0
    assert (tally.count, tally.failures, len(tally.infer_ms)) == (4, 2, 2) and tally.p50_total_ms >= tally.p50_infer_ms


def test_crop_border_recovers_the_unframed_image(fp32, samples_dir, tmp_path):
    """A real image inside a wide black frame: with --crop-border the model sees (nearly) the image itself."""
    image = np.asarray(Image.open(samples_dir / "ISIC_0000015.jpg").convert("RGB").resize((300, 300)))
    framed = np.zeros((500, 500, 3), np.uint8)
    framed[100:400, 100:400] = image
    Image.fromarray(framed).save(tmp_path / "framed.png")
    Image.fromarray(image).save(tmp_path / "alone.png")
    plain, cropped, alone = (np.array(json.loads(run_pi(fp32, tmp_path / name, "--json", "--raw", *flags).stdout.splitlines()[0])["probabilities"])
                             for name, flags in (("framed.png", []), ("framed.png", ["--crop-border"]), ("alone.png", [])))
    # measured: the frame moves probabilities by 0.067, the crop leaves 0.014 (its box comes from a 128 px thumbnail)
    assert np.abs(cropped - alone).max() < np.abs(plain - alone).max() / 3


def test_runs_with_torch_and_tensorflow_blocked(fp32, samples_dir):
    script = BLOCKER.split("import edgeskin.runtime as rt")[0] + (
        "import edgeskin.runtime.pi as pi\n"
        "code = pi.main([sys.argv[1], sys.argv[2], '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)\n"
        "assert not heavy, heavy\n"
        "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script, str(fp32), str(samples_dir / "ISIC_0000002.jpg")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["summary"]["classified"] == 1


NO_PICAMERA2 = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "picamera2":
            raise ImportError("no picamera2 here")
sys.meta_path.insert(0, Block())
import edgeskin.runtime.pi as pi
sys.exit(pi.main(sys.argv[1:]))
"""


def test_camera_without_picamera2_is_a_clear_error(fp32):
    done = subprocess.run([sys.executable, "-c", NO_PICAMERA2, str(fp32), "--camera"], capture_output=True, text=True, timeout=300)
    assert_pi_error(done, "picamera2 is not installed", "apt install python3-picamera2")
    assert done.stdout == ""


FAKE_PICAMERA2 = '''
import numpy as np
from PIL import Image
CALLS = []
class Picamera2:
    def create_still_configuration(self, main):
        return {"main": main}
    def configure(self, config):
        assert config["main"]["format"] == "BGR888"  # picamera2's BGR888 = [R, G, B] arrays
        self.size = config["main"]["size"]
    def start(self):
        pass
    def capture_array(self, stream="main"):
        return np.asarray(Image.open(__import__("os").environ["FAKE_FRAME"]).convert("RGB").resize(self.size))
    def stop(self):
        pass
    def close(self):
        print("camera closed", file=__import__("sys").stderr)
'''


def test_camera_frames_with_a_stand_in_picamera2(fp32, samples_dir, tmp_path):
    """picamera2's API (create_still_configuration/configure/start/capture_array) replaced by a stand-in
    that returns a real image: three frames, each classified like the file itself."""
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(FAKE_PICAMERA2)
    image = samples_dir / "ISIC_0000015.jpg"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]), "FAKE_FRAME": str(image)}
    done = run_pi(fp32, "--camera", "--every", "0.05", "--frames", "3", "--json", env=env)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["image"].split()[0] for r in records[:-1]] == ["camera-0001", "camera-0002", "camera-0003"]
    from edgeskin.runtime import load

    frame = np.asarray(Image.open(image).convert("RGB").resize((1024, 768)))
    expected = load(fp32, threads=1).predict(frame)[0]
    assert all(r["label"] == expected.label and abs(r["probability"] - expected.probability) < 1e-5 for r in records[:-1])
    assert records[-1]["summary"]["images"] == 3 and "camera closed" in done.stderr


def test_model_errors_are_one_line(fp32, samples_dir, tmp_path):
    image = samples_dir / "ISIC_0000002.jpg"
    assert_pi_error(run_pi(tmp_path / "missing.tflite", image), "missing.tflite", "no such model file")
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    assert_pi_error(run_pi(tmp_path / "junk.tflite", image), "junk.tflite", "not a TFLite model")
    (tmp_path / "model.txt").write_text("not a model")
    assert_pi_error(run_pi(tmp_path / "model.txt", image), "model.txt", "not an artifact edgeskin knows (.tflite, .onnx, .mlpackage)")
    data = fp32.read_bytes()
    (tmp_path / "cut.tflite").write_bytes(data[: len(data) // 2])
    assert_pi_error(run_pi(tmp_path / "cut.tflite", image), "cut.tflite")


@pytest.mark.parametrize("args, message", [
    ([], "give image files/folders, or --camera"),
    (["--every", "5"], "--every and --frames need --camera"),
    (["--top-k", "0"], "--top-k must be at least 1"),
])
def test_usage_errors_exit_2(samples_dir, args, message, capsys, tmp_path):
    """Argument checks come before any model is opened: in-process, no conversion needed."""
    from edgeskin.runtime.pi import main

    images = [] if not args else [samples_dir / "ISIC_0000002.jpg"]
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "never-opened.tflite"), *map(str, images), *args])
    stderr = capsys.readouterr().err
    assert exited.value.code == 2 and message in stderr and "Traceback" not in stderr


def test_one_tflite_predictor_shared_by_four_threads_gives_the_single_thread_answers(fp32, sample_pixels):
    """A TFLite interpreter holds one set of tensors: shared calls take turns (runtime/backends.py)."""
    from concurrent.futures import ThreadPoolExecutor

    from edgeskin.runtime import load

    predictor = load(fp32, threads=1)
    pixels = list(sample_pixels[:4]) * 6
    alone = [predictor.predict_pixels(p).probabilities for p in pixels]
    with ThreadPoolExecutor(max_workers=4) as pool:
        shared = list(pool.map(lambda p: predictor.predict_pixels(p).probabilities, pixels))
    np.testing.assert_array_equal(np.stack(shared), np.stack(alone))


def test_pillow_warnings_about_a_file_stay_off_the_terminal(fp32, tmp_path):
    """'Corrupt EXIF data' is Pillow's warning, not edgeskin's line: the image is classified, stderr stays empty."""
    import struct

    from tests.hostile_files import jpeg_with_exif

    image = jpeg_with_exif(tmp_path / "phone.jpg", b"II*\0" + struct.pack("<I", 10**6))  # first IFD far past the end
    done = run_pi(fp32, image)
    assert done.returncode == 0 and done.stderr == "", done.stderr
