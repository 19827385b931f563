"""Anytime files (`convert --exits`): every stage as a signature of one .tflite, checked exit by
exit, and a runtime that stops at the first confident exit without computing deeper blocks."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

import edgeskin
from edgeskin.runtime.anytime import AnytimePredictor, ExitPolicy
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.preprocess import preprocess
from edgeskin.runtime.stages import stage_plan
from tests.conftest import BUNDLED, perturbed_model
from tests.helpers import BIN, assert_one_line_error, run_console


def test_stage_plan_cuts_after_each_chosen_exit():
    plan = stage_plan((1, 2, 3, 4, 5, 6), [2, 4])
    assert [(s.exit, s.first, s.final) for s in plan] == [(2, 1, False), (4, 3, False), (6, 5, True)]
    assert [s.input for s in plan] == ["pixels", "tokens", "tokens"] and plan[-1].outputs == ("probabilities", "logits")
    with pytest.raises(EdgeskinError, match="no exit after block 7"):
        stage_plan((1, 2, 6), [7])


def test_stages_in_order_compute_what_the_model_computes_at_each_exit():
    from edgeskin.models.stages import Stage

    model = perturbed_model("skindistilvit-ti3-exits").eval()
    pixels = torch.rand(2, 3, 224, 224) * 255
    value = pixels
    with torch.no_grad():
        for spec in stage_plan(model.config.exit_blocks):
            outputs = Stage(model, spec)(value)
            torch.testing.assert_close(outputs[-1], model(pixels, exit=spec.exit), rtol=0, atol=0)
            value = outputs[0]


@pytest.fixture(scope="module")
def anytime(tmp_path_factory):
    model = perturbed_model("skindistilvit-ti3-exits")
    out = tmp_path_factory.mktemp("anytime") / "out"
    result = edgeskin.convert(model, target="tflite", recipes=["fp32", "fp16", "int8-mixed", "int8"], out=out, data=BUNDLED,
                              exits="all")
    single = edgeskin.convert(model, target="tflite", recipes=["fp32"], out=out.parent / "single", data=BUNDLED)
    return model, result, single.artifacts[0].path


def test_one_file_per_recipe_with_a_signature_per_stage_and_weights_once(anytime):
    _, result, single = anytime
    assert [a.recipe for a in result.artifacts] == ["fp32", "fp16", "int8-mixed", "int8"]
    fp32 = result.artifacts[0].path
    assert fp32.name == "skindistilvit-ti3-exits-anytime-e1-2-3-fp32.tflite"
    predictor = edgeskin.load(fp32)
    assert isinstance(predictor, AnytimePredictor)
    assert set(predictor.backend.signatures()) == {"exit_1", "exit_2", "exit_3"}
    assert fp32.stat().st_size < 1.02 * single.stat().st_size  # blocks stored once, not once per exit


@pytest.mark.parametrize("recipe", ["int8-mixed", "int8"])
def test_statically_quantized_anytime_files_run_every_stage(anytime, recipe, sample_pixels):
    """ai-edge-quantizer leaves a static recipe's signatures pointing at tensors LiteRT never fills
    (converters/anytime.py): every exit must give probabilities, stage by stage (int8: int8 tokens between stages)."""
    (check,) = [a for a in anytime[1].artifacts if a.recipe == recipe]
    predictor = edgeskin.load(check.path)  # checks every exit on a probe image
    for exit in (1, 2, 3):
        probabilities = predictor.run(sample_pixels[0], exit=exit)["probabilities"]
        assert np.isfinite(probabilities).all() and abs(probabilities.sum() - 1) < 0.05
    assert check.exit_parity[1].cosine_mean > 0.9  # the early exit computes what PyTorch's does, within int8 error


def test_every_exit_is_checked_and_recorded(anytime):
    _, result, _ = anytime
    manifest = json.loads((result.out / "manifest.json").read_text())
    entry = manifest["artifacts"][0]
    assert entry["stages"] == [1, 2, 3] and set(entry["exit_parity"]) == {"1", "2"}
    assert entry["exit_parity"]["1"]["agreement"] == 1.0 and entry["parity"]["max_abs_logit_diff"] < 1e-3
    meta = result.artifacts[0].metadata
    assert meta.stages == (1, 2, 3) and meta.anytime["measure"] == "top1"
    assert set(meta.anytime["thresholds"]) <= {"1", "2"} and meta.anytime["chosen_on"] == "bundled:val"


def test_each_exit_matches_pytorch(anytime, sample_pixels):
    model, result, _ = anytime
    predictor = edgeskin.load(result.artifacts[0].path)
    with torch.no_grad():
        for exit in (1, 2, 3):
            expected = model.eval()(torch.from_numpy(sample_pixels).permute(0, 3, 1, 2).float(), exit=exit).numpy()
            found = np.stack([predictor.run(p, exit=exit)["logits"] for p in sample_pixels])
            np.testing.assert_allclose(found, expected, atol=1e-4)


class CountingBackend:
    """The real backend, recording which stages ran."""

    def __init__(self, backend):
        self.backend, self.ran = backend, []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def run_signature(self, key, inputs):
        self.ran.append(key)
        return self.backend.run_signature(key, inputs)


def test_a_confident_exit_stops_the_run_before_deeper_stages(anytime, sample_images):
    predictor = edgeskin.load(anytime[1].artifacts[0].path)
    counting = CountingBackend(predictor.backend)
    predictor.backend = counting
    (early,) = predictor.predict(sample_images[0], exit_policy=0.0)  # any probability passes at exit 1
    assert (early.exit, counting.ran) == (1, ["exit_1"]) and early.seconds > 0
    counting.ran.clear()
    (full,) = predictor.predict(sample_images[0])  # no policy: the full depth
    assert (full.exit, counting.ran) == (3, ["exit_1", "exit_2", "exit_3"])
    counting.ran.clear()
    (late,) = predictor.predict(sample_images[0], exit_policy={2: 0.0})
    assert (late.exit, counting.ran) == (2, ["exit_1", "exit_2"])
    pixels = preprocess(sample_images[0], predictor.preprocess_config)
    np.testing.assert_allclose(late.probabilities, predictor.run(pixels, exit=2)["probabilities"])


def test_policies_are_checked():
    with pytest.raises(EdgeskinError, match="0..1"):
        ExitPolicy({1: 1.5})
    with pytest.raises(EdgeskinError, match="measure"):
        ExitPolicy({1: 0.5}, "entropy")
    assert ExitPolicy({1: 0.5}, "margin").stops(1, np.array([0.6, 0.3, 0.1])) is False
    assert ExitPolicy({1: 0.5}).stops(1, np.array([0.6, 0.3, 0.1])) is True


def test_edgeskin_pi_anytime_names_exits_and_sums_them_up(anytime, samples_dir):
    path = anytime[1].artifacts[0].path
    done = run_console("predict", str(path), str(samples_dir))  # plain use of an anytime file: full depth
    assert done.returncode == 0, done.stderr
    done = subprocess.run([str(BIN / "edgeskin-pi"), str(path), str(samples_dir), "--anytime", "auto", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert rows and all(row["exit"] in (1, 2, 3) and row["latency_ms"] > 0 for row in rows)
    histogram = {str(k): sum(row["exit"] == k for row in rows) for k in (1, 2, 3)}
    assert summary["exits"] == {k: v for k, v in histogram.items() if v} and summary["mean_latency_ms"] > 0
    done = subprocess.run([str(BIN / "edgeskin-pi"), str(path), str(samples_dir), "--anytime", "1.5"], capture_output=True, text=True)
    assert done.returncode == 2 and "0..1" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = run_console("predict", str(anytime[2]), str(samples_dir), "--anytime", "auto")  # a single-exit file
    assert_one_line_error(done, "--anytime needs an anytime file")


def test_exits_on_a_single_exit_model_is_one_line(tmp_path):
    """The bundled demo student has one exit."""
    assert_one_line_error(run_console("convert", "--exits", "all", "--out", tmp_path / "x"), "has one exit", "--every-exit")


def test_exits_refuses_what_anytime_files_cannot_be(tmp_path):
    from edgeskin.checkpoint import save_checkpoint

    ckpt = save_checkpoint(perturbed_model("skindistilvit-ti2-exits"), tmp_path / "m.safetensors")
    for flags, fragment in ((["--target", "onnx"], "TFLite files of the litert route (--target tflite) or Core ML"),
                            (["--route", "onnx2tf"], "TFLite files of the litert route"),
                            (["--exits", "5"], "no exit after block 5"),
                            (["--exits", "x"], "expected 'all' or exit blocks")):
        exits = [] if "--exits" in flags else ["--exits", "all"]
        done = run_console("convert", str(ckpt), *exits, *flags, "--out", tmp_path / "x")
        assert_one_line_error(done, fragment)
    assert not (tmp_path / "x").exists()


def test_metadata_naming_other_stages_than_the_file_holds_is_refused(anytime, tmp_path):
    from dataclasses import replace

    from edgeskin.converters.tflite import embed_metadata

    path = anytime[1].artifacts[0].path
    meta = edgeskin.load(path).metadata
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(embed_metadata(path.read_bytes(), replace(meta, stages=(1, 3))))
    with pytest.raises(EdgeskinError, match="the file has signatures exit_1, exit_2, exit_3"):
        edgeskin.load(bad)


def test_parity_reports_every_exit_and_the_anytime_section(anytime, tmp_path):
    from PIL import Image

    run = edgeskin.verify(anytime[1], data=BUNDLED, split="test", out=tmp_path / "report")
    check = run.checks[0]
    assert set(check.exit_parity) == {1, 2, 3} and check.anytime is not None
    data = json.loads((tmp_path / "report" / "report.json").read_text())["artifacts"][0]
    assert set(data["exit_parity"]) == {"1", "2", "3"}
    anytime = data["anytime"]
    full, fixed = anytime["full_depth"], {p["exit"]: p for p in anytime["fixed_exits"]}
    assert full["exits"] == {"1": 0, "2": 0, "3": 49} and full["mean_blocks"] == 3.0
    # stopping at exit 1 always runs one stage of three: cheaper than the full depth, same images
    assert fixed[1]["mean_ms"] < fixed[3]["mean_ms"] and fixed[3]["mean_ms"] == full["mean_ms"]
    assert len(anytime["curve"]) >= 10 and anytime["noise"] >= 1.0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "Exit by exit" in markdown and "### Anytime: " in markdown
    png = tmp_path / "report" / f"anytime-{check.path.name}.png"
    with Image.open(png) as image:
        assert image.size[0] > 400


def test_the_chosen_policy_keeps_its_budget_on_the_images_it_was_chosen_on():
    """A synthetic case worked by hand: exit 1 is right and confident on the first half of the
    images and wrong and unsure on the rest, so a threshold between the two stops exactly the first half."""
    from edgeskin.anytime_policy import choose_policy, simulate

    classes = ("MEL", "NV")
    labels = np.array([0, 1] * 10)
    final = np.eye(2)[labels] * 0.9 + 0.05  # the full depth: always right
    early = final.copy()
    early[10:] = np.where(np.eye(2)[labels[10:]] > 0, 0.45, 0.55)  # wrong and unsure on the second half
    policy, outcome, full = choose_policy({1: early, 2: final}, labels, classes, budget=0.01)
    assert full.bma == 1.0 and outcome.bma == 1.0
    assert 0.55 < policy.thresholds[1] <= 0.95  # stops where exit 1 is sure, never where it is not
    assert list(outcome.exits) == [1] * 10 + [2] * 10
    assert simulate({1: early, 2: final}, labels, classes, None).blocks == 2.0
