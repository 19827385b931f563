"""Core ML anytime packages (`convert --exits … --target coreml`): a multifunction .mlpackage per
recipe, a function per stage, checked exit by exit by the numpy checker (the iOS 18 opset they use:
scaled_dot_product_attention and the iOS 18 weight decompression ops) and run by the anytime runtime."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest
import torch

import edgeskin
from edgeskin.runtime.anytime import AnytimePredictor
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.preprocess import preprocess
from tests.conftest import BUNDLED, perturbed_model
from tests.helpers import run_console
from tests.test_anytime import CountingBackend

RECIPES = ["fp32", "fp16", "w8", "palettize4"]


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    model = perturbed_model("skindistilvit-ti3-exits")
    out = tmp_path_factory.mktemp("coreml-anytime") / "out"
    result = edgeskin.convert(model, target="coreml", recipes=RECIPES, out=out, data=BUNDLED, exits="all")
    return model, result


def _path(result, recipe):
    return next(a.path for a in result.artifacts if a.recipe == recipe)


def test_one_multifunction_package_per_recipe_with_a_function_per_stage(packages):
    from edgeskin.runtime.mlpackage import package_functions, read_package

    _, result = packages
    assert [a.recipe for a in result.artifacts] == RECIPES
    path = _path(result, "fp32")
    assert path.name == "skindistilvit-ti3-exits-anytime-e1-2-3-fp32.mlpackage"
    assert package_functions(path) == ("exit_1", "exit_2", "exit_3")
    assert read_package(path).function == "exit_3"  # the default function: the full depth
    entry = json.loads((path.parent / "manifest.json").read_text())["artifacts"][0]
    assert entry["stages"] == [1, 2, 3] and entry["minimum_deployment_target"] == "iOS18" and set(entry["exit_parity"]) == {"1", "2"}
    predictor = edgeskin.load(path)
    assert isinstance(predictor, AnytimePredictor) and predictor.metadata.anytime["thresholds"]
    signatures = predictor.backend.signatures()
    assert list(signatures["exit_1"]["inputs"]) == ["pixels"] and list(signatures["exit_2"]["inputs"]) == ["tokens"]
    assert set(signatures["exit_1"]["outputs"]) == {"tokens", "probabilities", "logits"}
    with pytest.raises(EdgeskinError, match="has no function 'exit_9'"):
        read_package(path, "exit_9")


def test_each_exit_matches_pytorch(packages, sample_pixels):
    model, result = packages
    for recipe, limit in (("fp32", 1e-4), ("fp16", 2e-2), ("w8", 0.1)):
        predictor = edgeskin.load(_path(result, recipe))
        for pixels in sample_pixels[:2]:
            with torch.no_grad():
                expected = {k: model(torch.from_numpy(pixels[None]).permute(0, 3, 1, 2).float(), exit=k)[0].numpy() for k in (1, 2, 3)}
            for exit, outputs in predictor.run_all(pixels).items():
                gap = np.abs(outputs["logits"] - expected[exit]).max() / np.abs(expected[exit]).max()
                assert gap < limit, (recipe, exit, gap)


def test_a_confident_exit_stops_before_deeper_functions(packages, sample_images):
    predictor = edgeskin.load(_path(packages[1], "w8"))
    counting = CountingBackend(predictor.backend)
    predictor.backend = counting
    (early,) = predictor.predict(sample_images[0], exit_policy=0.0)
    assert (early.exit, counting.ran) == (1, ["exit_1"])
    counting.ran.clear()
    (late,) = predictor.predict(sample_images[0], exit_policy={2: 0.0})
    assert (late.exit, counting.ran) == (2, ["exit_1", "exit_2"])
    np.testing.assert_allclose(late.probabilities, predictor.run(preprocess(sample_images[0], predictor.preprocess_config), 2)["probabilities"])


def test_ios18_weight_decompression_matches_coremltools(packages):
    """The anytime packages' opset (iOS 18) compresses weights with other ops than iOS 16's."""
    from coremltools.converters.mil.mil.ops.defs.iOS18.compression import (
        constexpr_blockwise_shift_scale,
        constexpr_lut_to_dense,
    )

    from edgeskin.runtime.coreml import MilExecutor
    from edgeskin.runtime.milops import OPS
    from edgeskin.runtime.mlpackage import read_package

    reference = {"constexpr_blockwise_shift_scale": lambda data, scale, offset=None: constexpr_blockwise_shift_scale.decompress(data, scale, offset),
                 "constexpr_lut_to_dense": lambda indices, lut, vector_axis=None: constexpr_lut_to_dense.decompress(indices, lut, vector_axis)}
    checked = set()
    for recipe in ("w8", "palettize4"):
        package = read_package(_path(packages[1], recipe), "exit_2")
        executor = MilExecutor(package)
        for op in package.program.ops:
            if op.type in reference:
                arguments = {name: executor._resolve(b[0], executor.constants) for name, b in op.inputs.items()}
                theirs = np.asarray(reference[op.type](**arguments), np.float32)
                np.testing.assert_allclose(OPS[op.type](**arguments)[0].astype(np.float32), theirs, rtol=1e-3, atol=1e-6)
                checked.add((recipe, op.type))
    assert checked == {("w8", "constexpr_blockwise_shift_scale"), ("palettize4", "constexpr_lut_to_dense")}


def test_scaled_dot_product_attention_is_torchs():
    from edgeskin.runtime.milops import OPS

    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=generator) for _ in range(3))
    keep = torch.rand(5, 5, generator=generator) > 0.3
    keep[:, 0] = True
    for mask in (None, keep, torch.randn(5, 5, generator=generator)):
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).numpy()
        ours = OPS["scaled_dot_product_attention"](q.numpy(), k.numpy(), v.numpy(), None if mask is None else mask.numpy())[0]
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_info_names_the_functions_and_the_stored_policy(packages):
    done = run_console("info", str(_path(packages[1], "fp16")))
    assert done.returncode == 0, done.stderr
    assert "stages     exit_1, exit_2, exit_3 (a function each" in done.stdout and "policy     top1 >= " in done.stdout


@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML prediction (MLModel with a function_name) needs macOS")
def test_core_ml_itself_runs_every_function_as_the_checker_does(packages, sample_pixels):
    from edgeskin.runtime.predictor import load

    path = _path(packages[1], "fp32")
    mac, checker = load(path), load(path, coreml_checker=True)
    for exit, outputs in mac.run_all(sample_pixels[0]).items():
        np.testing.assert_allclose(outputs["logits"], checker.run_all(sample_pixels[0])[exit]["logits"], rtol=1e-2, atol=1e-2)


def test_predict_anytime_names_the_exit_of_every_image(packages, samples_dir):
    path = _path(packages[1], "w8")
    done = run_console("predict", str(path), str(samples_dir), "--anytime", "0", "--json")  # any probability stops at exit 1
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert rows and all(row["exit"] == 1 for row in rows) and summary["exits"] == {"1": len(rows)}
    done = run_console("predict", str(path), str(next(samples_dir.iterdir())), "--anytime", "auto")
    assert done.returncode == 0 and "(exit " in done.stdout and "answered at exit" in done.stdout, done.stderr
