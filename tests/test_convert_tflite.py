"""The TFLite/ONNX path end to end on the bundled demo student and real images.

One conversion per session (all recipes, both targets) feeds most tests: conversions take
tens of seconds here.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgeskin.converters.recipes import RECIPES
from edgeskin.model_loading import load_checkpoint
from edgeskin.runtime import EdgeskinError
from edgeskin.runtime.formats import format_for_target, read_artifact_metadata
from tests.conftest import DEMO_STUDENT
from tests.helpers import assert_one_line_error, has_real_data, run_cli
from tests.test_runtime_isolation import BLOCKER


def _verdict_count(real_data_dir) -> int:
    from edgeskin.data import open_dataset

    return len(open_dataset(real_data_dir, "val"))  # 74 in ../shared, 40 in the bundled set


def _artifact(manifest, target, recipe):
    return next(a for a in manifest["artifacts"] if a["target"] == target and a["recipe"] == recipe)


@pytest.mark.parametrize(("target", "recipe"), [("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"),
                                                 ("tflite", "int8-mixed"), ("onnx", "fp32")])
def test_shipped_recipes_pass_their_gates(converted, target, recipe, real_data_dir):
    out, manifest, _, _ = converted
    art = _artifact(manifest, target, recipe)
    gate, parity = RECIPES[recipe].gate, art["parity"]
    assert art["verdict"] == "pass", art["failures"]
    assert parity["n_images"] == _verdict_count(real_data_dir)  # the val split of the default image set
    assert parity["agreement"] >= gate.min_agreement
    if gate.max_logit_diff_rel is not None:
        assert parity["max_abs_logit_diff"] <= gate.max_logit_diff_rel * parity["logit_range"]
    if gate.min_cosine is not None:
        assert parity["cosine_mean"] >= gate.min_cosine
    if gate.max_bma_loss is not None:
        assert parity["reference_bma"] - parity["artifact_bma"] <= gate.max_bma_loss
    data = (out / art["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == art["sha256"] and len(data) == art["bytes"]


def test_failed_artifacts_are_quarantined_and_the_exit_code_says_so(converted):
    out, manifest, code, stderr = converted
    failed = [a for a in manifest["artifacts"] if a["verdict"] == "fail"]
    assert code == (1 if failed else 0)
    for art in failed:
        assert art["file"].startswith("failed/") and (out / art["file"]).is_file()
        assert f"FAILED {art['recipe']}" in stderr


def test_file_names_and_embedded_metadata(converted):
    out, manifest, _, _ = converted
    student = load_checkpoint(DEMO_STUDENT)
    for art in manifest["artifacts"]:
        name = os.path.basename(art["file"])
        assert name == f"skindistilvit-ti6-e6-{art['recipe']}{format_for_target(art['target']).suffix}"
        meta = read_artifact_metadata(out / art["file"]) if art["target"] in ("tflite", "coreml") else None
        if meta is not None:
            assert meta.recipe == art["recipe"] and meta.class_names == student.config.class_names
            assert meta.source_checkpoint_sha256 == student.source_sha256 == manifest["source_checkpoint"]["sha256"]
            tools = ("litert-torch", "ai-edge-quantizer") if art["target"] == "tflite" else ("coremltools",)
            assert all(tool in meta.converter for tool in tools), meta.converter
            assert meta.route == art["route"] == ("litert-torch" if art["target"] == "tflite" else "coremltools")


def test_int8_input_is_integer_and_calibration_is_disjoint_from_verdicts(converted, real_data_dir):
    from edgeskin.data import open_dataset

    out, manifest, _, _ = converted
    int8_input = _artifact(manifest, "tflite", "int8")["input"]
    # the global min/max calibration sees the full 0..255 pixel range (a moving average clipped it: scale 0.88)
    assert int8_input["dtype"] == "int8" and int8_input["scale"] == pytest.approx(1.0, abs=0.01)
    assert _artifact(manifest, "tflite", "w8a16")["input"]["dtype"] == "int16"
    calib = manifest["calibration"]
    assert calib["count"] == min(100, len(open_dataset(real_data_dir, "train"))) and calib["source"].endswith(":train")

    val_hashes = {hashlib.sha256(s.path.read_bytes()).hexdigest() for s in open_dataset(real_data_dir, "val").samples}
    assert not val_hashes & {img["sha256"] for img in calib["images"]}


def test_convert_names_the_image_sets_it_used(converted, real_data_dir):
    out, manifest, _, stderr = converted
    verdict, calib = manifest["verdict_images"], manifest["calibration"]
    assert f"verdict: {verdict['count']} images of {verdict['source']}" in stderr
    assert f"calibration: {calib['count']} images of {calib['source']}" in stderr
    expected = "bundled" if not has_real_data(real_data_dir) else str(real_data_dir)
    assert verdict["source"] == f"{expected}:val" and verdict["count"] == _verdict_count(real_data_dir)


def test_torch_free_runtime_gives_pytorch_top1(converted, sample_pixels, sample_images):
    """Every shipped artifact, loaded with torch and TensorFlow blocked, agrees with PyTorch on the samples."""
    out, manifest, _, _ = converted
    student = load_checkpoint(DEMO_STUDENT).model
    with torch.no_grad():
        expected = student(torch.from_numpy(sample_pixels).permute(0, 3, 1, 2).float()).argmax(1).tolist()
    names = student.config.class_names
    images = [str(p) for p in sample_images]  # the order of sample_pixels
    script = BLOCKER.split("import edgeskin.runtime as rt")[0] + (
        "import json, edgeskin.runtime.predictor as P\n"
        "files = json.loads(sys.argv[2])\n"
        "for f in files:\n"
        "    p = P.load(f)\n"
        "    print(json.dumps([x.label for x in p.predict(json.loads(sys.argv[3]))]))\n")
    shipped = [a for a in manifest["artifacts"] if a["verdict"] == "pass"]
    files = [str(out / a["file"]) for a in shipped]
    done = subprocess.run([sys.executable, "-c", script, "unused", json.dumps(files), json.dumps(images)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(rows) == len(shipped)
    for art, labels in zip(shipped, rows, strict=True):
        flips = sum(a != names[e] for a, e in zip(labels, expected, strict=True))
        # float32 must agree exactly; quantized recipes (gated on the val split) may flip one of 16
        assert flips <= (0 if art["recipe"] == "fp32" else 1), (art["file"], labels)


def test_predict_prints_top_k_and_reports_bad_files(converted, samples_dir, tmp_path):
    out, _, _, _ = converted
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    done = run_cli("predict", out / "skindistilvit-ti6-e6-fp32.tflite", samples_dir / "ISIC_0000002.jpg", bad, "--top-k", "2")
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert "ISIC_0000002.jpg: " in lines[0] and "top-2:" in lines[0]
    assert lines[1].startswith(f"{bad}: error: not an image")
    assert lines[2].startswith("2 images, 1 failures, p50 latency ")


def test_corrupt_and_truncated_tflite(converted, tmp_path, samples_dir):
    out, _, _, _ = converted
    data = (out / "skindistilvit-ti6-e6-fp32.tflite").read_bytes()
    (tmp_path / "cut.tflite").write_bytes(data[: len(data) // 2])
    assert_one_line_error(run_cli("predict", tmp_path / "cut.tflite", samples_dir / "ISIC_0000002.jpg"), "cut.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    assert_one_line_error(run_cli("predict", tmp_path / "junk.tflite", samples_dir / "ISIC_0000002.jpg"), "junk.tflite", "not a TFLite model")


def test_model_that_needs_a_newer_runtime(converted, tmp_path, samples_dir):
    """Bump FULLY_CONNECTED's op version past what the runtime knows, as a newer converter would."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    out, _, _, _ = converted
    model = flatbuffer_utils.read_model_from_bytearray(bytearray((out / "skindistilvit-ti6-e6-fp32.tflite").read_bytes()))
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.FULLY_CONNECTED:
            code.version = 99
    (tmp_path / "future.tflite").write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    done = run_cli("predict", tmp_path / "future.tflite", samples_dir / "ISIC_0000002.jpg")
    assert_one_line_error(done, "future.tflite", "needs a newer TFLite runtime")


def _few_images(folder, samples_dir, count: int):
    folder.mkdir()
    (folder / "images").symlink_to(samples_dir)
    names = sorted(p.name for p in samples_dir.glob("*.jpg"))[:count]
    (folder / "labels.csv").write_text("image,label\n" + "".join(f"{n},{'MEL' if i % 2 else 'NV'}\n" for i, n in enumerate(names)))
    return folder


def test_bad_convert_requests(tmp_path, samples_dir, bundled_dir):
    (tmp_path / "notes.safetensors").write_text("not a model")
    assert_one_line_error(run_cli("convert", tmp_path / "notes.safetensors", "--out", tmp_path / "o"), "notes.safetensors")
    assert_one_line_error(run_cli("convert", "--recipes", "fp32,int4", "--out", tmp_path / "o"), "unknown recipe 'int4'")
    (tmp_path / "exists").mkdir()
    assert_one_line_error(run_cli("convert", "--recipes", "fp32", "--data", bundled_dir, "--out", tmp_path / "exists"),
                          "exists", "output folder exists (use --force")
    # a folder the user names is used or refused, never replaced by another
    assert_one_line_error(run_cli("convert", "--calib", "/nonexistent", "--out", tmp_path / "o"), "/nonexistent", "--calib")
    assert_one_line_error(run_cli("convert", "--data", tmp_path / "gone", "--out", tmp_path / "o"), "gone", "--data")
    # named before an existing output folder, and even when no recipe calibrates
    assert_one_line_error(run_cli("convert", "--target", "onnx", "--calib", "/nonexistent", "--out", tmp_path / "exists"),
                          "/nonexistent", "--calib")
    # calibration: too few images
    few = _few_images(tmp_path / "few", samples_dir, 16)
    assert_one_line_error(run_cli("convert", "--recipes", "int8", "--data", bundled_dir, "--calib", few,
                                  "--calib-split", "all", "--out", tmp_path / "o"), "only 16 calibration images")
    assert_one_line_error(run_cli("convert", "--recipes", "int8", "--data", bundled_dir, "--calib-split", "val",
                                  "--out", tmp_path / "o"), "--calib-split val is the split the verdicts use")
    assert not (tmp_path / "o").exists()


def test_only_calib_given_says_where_the_verdict_images_come_from(tmp_path, bundled_dir, real_data_dir):
    from edgeskin.data import open_dataset

    done = run_cli("convert", "--target", "onnx", "--calib", bundled_dir, "--out", tmp_path / "o")
    assert done.returncode == 0, done.stderr
    verdict = open_dataset(real_data_dir, "val")
    line = next(line for line in done.stderr.splitlines() if "verdict:" in line)
    assert f"verdict: {len(verdict)} images of {verdict.name} (--data not given;" in line
    assert f"verdict: {len(verdict)} images of {verdict.name}" in done.stdout  # the table names it too


def test_calibration_with_missing_classes_is_refused_for_user_data(tmp_path, samples_dir):
    """A user's folder must cover every class; the bundled set is exempt and says what it lacks."""
    from edgeskin.converters.calibration import calibration_set
    from edgeskin.image_sources import ImageSource, bundled_images
    from edgeskin.models import ISIC_CLASSES
    from edgeskin.runtime import PreprocessConfig

    mine = ImageSource(_few_images(tmp_path / "mine", samples_dir, 40), "given")
    with pytest.raises(EdgeskinError, match="calibration images lack classes BCC, AK, BKL, DF, VASC, SCC"):
        calibration_set(mine, None, ISIC_CLASSES, PreprocessConfig())
    bundled = calibration_set(bundled_images(), "train", ISIC_CLASSES, PreprocessConfig(), count=64)
    assert len(bundled.image_ids) == 64 and bundled.source == "bundled:train"
    assert bundled.missing_classes == ("BCC", "AK", "BKL", "DF", "VASC", "SCC")


def test_interrupted_conversion_leaves_nothing_behind(tmp_path, bundled_dir):
    out = tmp_path / "dist"
    proc = subprocess.Popen([sys.executable, "-m", "edgeskin.cli", "convert", "--recipes", "fp32", "--data", bundled_dir,
                             "--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".dist.partial-*/.work/litert.log")):
        time.sleep(0.2)
    assert list(tmp_path.glob(".dist.partial-*")), "conversion never reached litert-torch"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode == 130, proc.stderr.read()
    assert not out.exists()
    assert not list(tmp_path.glob(".dist.*")), list(tmp_path.iterdir())


def _output_names(path) -> list[str]:
    """Output names in index order, as each format's own tooling lists them (not edgeskin's runtime)."""
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_litert.tools import flatbuffer_utils

        by_index = [d["name"] for d in Interpreter(model_path=str(path)).get_output_details()]
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
        (signature,) = model.signatureDefs  # every recipe has one; its order as stored (the interpreter's list sorts names)
        assert [o.name.decode() for o in signature.outputs] == by_index, path.name
        return by_index
    if path.suffix == ".onnx":
        import onnxruntime

        return [o.name for o in onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_outputs()]
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    return [o.name for o in spec.description.output if o.type.WhichOneof("Type") == "multiArrayType"]


def test_every_format_and_recipe_has_the_same_outputs_in_the_same_order(converted, sample_images):
    """Output 0 = probabilities, output 1 = logits, for every file the demo conversion wrote."""
    from edgeskin.runtime import load
    from edgeskin.runtime.metadata import OUTPUT_ROLES
    from edgeskin.runtime.predictions import dequantize, model_input
    from edgeskin.runtime.preprocess import preprocess

    out, manifest, _, _ = converted
    pixels = preprocess(sample_images[0])
    seen = {}
    for art in manifest["artifacts"]:
        path = out / art["file"]
        names = _output_names(path)
        # Core ML addresses features by name; its classifier adds `label` and `label_probs` beside them
        expected = ["logits"] if art["target"] == "coreml" else list(OUTPUT_ROLES)
        assert names == expected, (art["file"], names)
        assert art["outputs"] == list(OUTPUT_ROLES)
        predictor = load(path)
        assert predictor.metadata.outputs == OUTPUT_ROLES
        raw = predictor.backend.run(model_input(pixels, predictor.metadata.input.layout, predictor.input))
        first = dequantize(raw[0], predictor.backend.outputs[0])
        assert abs(float(first.sum()) - 1) < 0.02 and first.min() >= 0  # index 0 really holds probabilities
        seen[(art["target"], art["recipe"])] = names
    assert {("tflite", r) for r in ("fp32", "fp16", "dynamic", "int8-mixed", "int8")} <= set(seen)


def test_predict_expands_folders_like_the_pi_script(converted, sample_images, tmp_path):
    from edgeskin.runtime.inputs import expand_inputs

    out, _, _, _ = converted
    folder = tmp_path / "visit"
    (folder / "more").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(sample_images[0].read_bytes())
    (folder / "more" / "b.jpg").write_bytes(sample_images[1].read_bytes())
    (folder / ".hidden.jpg").write_bytes(b"skipped")
    done = run_cli("predict", out / "skindistilvit-ti6-e6-fp32.tflite", folder, "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    expected = [str(folder / "a.jpg"), str(folder / "more" / "b.jpg")]
    assert [r["image"] for r in records[:-1]] == [str(e.path) for e in expand_inputs([folder]).entries] == expected
    assert records[-1]["summary"] == {"images": 2, "classified": 2, "failures": 0, "skipped": "skipped 1 hidden or non-image file (.hidden.jpg)"}


def test_a_killed_conversions_staging_is_removed_by_the_next_run(tmp_path):
    """SIGKILL runs no handler: the next conversion into the same place removes what it left, and says so."""
    from edgeskin.converters.artifacts import remove_stale_staging, staged_folder

    out = tmp_path / "dist"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".dist.partial-{dead.pid}-abc123"
    older = tmp_path / ".dist.partial-k1ll3d"  # an earlier edgeskin's name, without a process id
    live = tmp_path / f".dist.partial-{os.getpid()}-xyz789"  # a conversion still running
    unrelated = tmp_path / ".distant.partial-1-a"
    for folder in (stale, older, live, unrelated):
        (folder / ".work").mkdir(parents=True)
        (folder / ".work" / "probe.tflite").write_bytes(b"x" * 1000)
    said = []
    with staged_folder(out, force=False, report=said.append) as staging:
        assert staging.name.startswith(f".dist.partial-{os.getpid()}-")
        (staging / "a.tflite").write_bytes(b"model")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".distant.partial-1-a", live.name, "dist"])
    assert said == [f"removed .dist.partial-{dead.pid}-abc123, a conversion left unfinished by process {dead.pid}, which no longer runs",
                    "removed .dist.partial-k1ll3d, a conversion left unfinished by an earlier edgeskin"]
    assert remove_stale_staging(out) == [] and (out / "a.tflite").read_bytes() == b"model"
