"""Core ML target: the converted packages, and the numpy checker that evaluates them on Linux.

The checker is validated against PyTorch (fp32 to 1e-4 relative), against coremltools' own
weight decompression, and by editing a package on disk: the output must follow the edit, so
it reads the package, never the source model.
"""

from __future__ import annotations

import platform
import shutil

import numpy as np
import pytest

from edgeskin.runtime.metadata import OUTPUT_ROLES
from tests.conftest import DEMO_STUDENT, perturbed_model
from tests.helpers import assert_one_line_error, run_cli

RECIPES = ["fp32", "fp16", "w8", "palettize4"]

LOGITS = OUTPUT_ROLES.index("logits")  # backends return outputs in the artifact contract's order


@pytest.fixture(scope="module")
def packages(tmp_path_factory, sample_pixels):
    """A small seeded model converted with convert_coreml (no parity gate), once per module."""
    from edgeskin.converters.coreml import convert_coreml

    model = perturbed_model("skindistilvit-ti2").eval()
    work = tmp_path_factory.mktemp("coreml")
    written, frontend = convert_coreml(model, 2, model.config.class_names, RECIPES, sample_pixels[0], work)
    assert frontend == "torch.export"  # the tracer is the fallback
    return model, written


def _checker_logits(path, pixels):
    from edgeskin.runtime.coreml import CoreMLCheckerBackend

    backend = CoreMLCheckerBackend(path)
    return np.concatenate([backend.run(p.transpose(2, 0, 1)[None].astype(np.float32))[LOGITS] for p in pixels])


def _torch_logits(model, pixels, exit):
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(pixels).permute(0, 3, 1, 2).float(), exit=exit).numpy()


def _relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _files(package):
    """Every file under a package, as paths relative to it."""
    return {f.relative_to(package).as_posix() for f in package.rglob("*") if not f.is_dir()}


def _listed(package):
    """Manifest.json and the files its itemInfoEntries name (a listed folder lists what it holds)."""
    import json

    listed = {"Manifest.json"}
    for item in json.loads((package / "Manifest.json").read_text())["itemInfoEntries"].values():
        path = package / "Data" / item["path"]
        assert path.exists(), item
        listed |= {f"Data/{item['path']}/{f}" for f in _files(path)} if path.is_dir() else {f"Data/{item['path']}"}
    return listed


def test_fp32_program_matches_pytorch(packages, sample_pixels):
    model, written = packages
    pixels = sample_pixels[:6]
    assert _relative(_checker_logits(written["fp32"], pixels), _torch_logits(model, pixels, 2)) <= 1e-4


@pytest.mark.parametrize("recipe,limit", [("fp16", 2e-2), ("w8", 5e-2), ("palettize4", 0.5)])
def test_compressed_programs_are_close_but_not_exact(packages, sample_pixels, recipe, limit):
    """float16 rounding and compressed weights: the checker must show an error (it evaluates the
    stored program) and a bounded one (it decompresses the weights as Core ML does)."""
    model, written = packages
    pixels = sample_pixels[:4]
    error = _relative(_checker_logits(written[recipe], pixels), _torch_logits(model, pixels, 2))
    assert 1e-5 < error <= limit, error


def test_program_holds_the_compression_ops(packages):
    from edgeskin.runtime.mlpackage import read_package

    _, written = packages
    types = {recipe: {op.type for op in read_package(written[recipe]).program.ops} for recipe in RECIPES}
    assert "constexpr_affine_dequantize" in types["w8"]
    assert "constexpr_lut_to_dense" in types["palettize4"]
    assert not any(t.startswith("constexpr_") for t in types["fp32"] | types["fp16"])
    assert {"classify", "linear", "layer_norm", "softmax"} <= types["fp32"]


def test_converted_packages_hold_only_what_their_manifest_lists(packages):
    """coremltools 9.0 adds executorch_debug_handle_mapping.json to a torch.export program's package."""
    import coremltools as ct

    _, written = packages
    for path in written.values():
        assert _files(path) == _listed(path) and "Data/com.apple.CoreML/weights/weight.bin" in _files(path)
        assert ct.models.MLModel(str(path), skip_model_load=True).get_spec().WhichOneof("Type") == "mlProgram"


def test_save_package_drops_files_a_copied_package_carries(packages, sample_pixels, tmp_path):
    """A package copied with stray files (one nested two folders deep) is saved without them or their
    folders, and the checker computes the same logits from it."""
    import coremltools as ct

    from edgeskin.converters.coreml import save_package, unlisted_files

    _, written = packages
    source, saved = tmp_path / "source.mlpackage", tmp_path / "saved.mlpackage"
    shutil.copytree(written["fp32"], source)
    (source / "executorch_debug_handle_mapping.json").write_text('{"mapping": {}}')
    (source / "Data" / "notes" / "deep").mkdir(parents=True)
    (source / "Data" / "notes" / "deep" / "readme.txt").write_text("stray")
    assert [f.name for f in unlisted_files(source)] == ["readme.txt", "executorch_debug_handle_mapping.json"]
    save_package(ct.models.MLModel(str(source), skip_model_load=True), saved)
    assert _files(saved) == _listed(saved) == _listed(written["fp32"]) and not (saved / "Data" / "notes").exists()
    np.testing.assert_array_equal(_checker_logits(saved, sample_pixels[:2]), _checker_logits(written["fp32"], sample_pixels[:2]))


def test_weight_decompression_matches_coremltools(packages):
    """Every compressed weight, decompressed by the checker and by coremltools' op definitions."""
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import (
        constexpr_affine_dequantize,
        constexpr_lut_to_dense,
    )

    from edgeskin.runtime.milops import OPS
    from edgeskin.runtime.mlpackage import read_package

    _, written = packages
    reference = {"constexpr_affine_dequantize": constexpr_affine_dequantize.decompress,
                 "constexpr_lut_to_dense": constexpr_lut_to_dense.decompress}
    checked = 0
    for recipe in ("w8", "palettize4"):
        for op in read_package(written[recipe]).program.ops:
            if op.type in reference:
                ours = OPS[op.type](**op.attributes)[0]
                theirs = reference[op.type](**op.attributes)
                np.testing.assert_allclose(ours.astype(np.float32), np.asarray(theirs, np.float32), rtol=1e-3, atol=1e-6)
                checked += 1
    assert checked >= 2 * 6  # ti2: qkv, proj, fc1, fc2 per block, patch embedding, head


def test_checker_reads_the_package_not_the_model(packages, sample_pixels, tmp_path):
    """Double one class's row of the head weight inside weight.bin: exactly that logit follows,
    logit = 2 * (old logit - bias) + bias; the others do not move."""
    from edgeskin.runtime.mlpackage import read_package

    _, written = packages
    package = tmp_path / "edited.mlpackage"
    shutil.copytree(written["fp32"], package)
    program = read_package(package).program
    head = [op for op in program.ops if op.type == "linear"][-1]
    const = {name: op.attributes["val"] for op in program.ops if op.type == "const" for name in op.outputs}
    weight, bias = (np.asarray(const[head.inputs[k][0].name], np.float32) for k in ("weight", "bias"))
    weights = next(package.rglob("weight.bin"))
    data = bytearray(weights.read_bytes())
    at = data.find(weight.tobytes())
    assert at > 0 and data.find(weight.tobytes(), at + 1) < 0
    edited = weight.copy()
    edited[3] *= 2.0
    data[at:at + weight.nbytes] = edited.tobytes()
    weights.write_bytes(bytes(data))

    pixels = sample_pixels[:2]
    before, after = _checker_logits(written["fp32"], pixels), _checker_logits(package, pixels)
    np.testing.assert_allclose(after[:, 3], 2 * (before[:, 3] - bias[3]) + bias[3], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.delete(after, 3, axis=1), np.delete(before, 3, axis=1))
    assert np.abs(after[:, 3] - before[:, 3]).min() > 1e-3


def test_unknown_op_is_named(packages, tmp_path):
    """gelu renamed to an op the checker lacks (same length, so the protobuf stays valid)."""
    from edgeskin.runtime.coreml import CoreMLCheckerBackend
    from edgeskin.runtime.errors import EdgeskinError

    _, written = packages
    package = tmp_path / "unknown-op.mlpackage"
    shutil.copytree(written["fp32"], package)
    spec = next(package.rglob("model.mlmodel"))
    assert b"gelu" in spec.read_bytes()
    spec.write_bytes(spec.read_bytes().replace(b"gelu", b"gelx"))
    with pytest.raises(EdgeskinError, match=r"unsupported op gelx") as caught:
        CoreMLCheckerBackend(package)
    assert "\n" not in str(caught.value) and str(package) in str(caught.value)


def test_truncated_weight_file(packages, tmp_path):
    from edgeskin.runtime.coreml import CoreMLCheckerBackend
    from edgeskin.runtime.errors import EdgeskinError

    _, written = packages
    package = tmp_path / "truncated.mlpackage"
    shutil.copytree(written["fp32"], package)
    weights = next(package.rglob("weight.bin"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(EdgeskinError, match=r"weight") as caught:
        CoreMLCheckerBackend(package)
    assert "\n" not in str(caught.value) and str(package) in str(caught.value)


def test_folder_that_is_not_a_package(tmp_path):
    from edgeskin.runtime.coreml import CoreMLCheckerBackend
    from edgeskin.runtime.errors import EdgeskinError

    folder = tmp_path / "photos.mlpackage"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    with pytest.raises(EdgeskinError, match=r"not an \.mlpackage|Manifest\.json") as caught:
        CoreMLCheckerBackend(folder)
    assert "\n" not in str(caught.value) and str(folder) in str(caught.value)


@pytest.mark.parametrize("damage", ["not-a-package", "truncated", "unknown-op"])
def test_cli_reports_bad_packages_in_one_line(packages, tmp_path, samples_dir, damage):
    """`edgeskin predict` on a damaged package: exit 2, one line, no traceback."""
    _, written = packages
    package = tmp_path / f"{damage}.mlpackage"
    if damage == "not-a-package":
        package.mkdir()
    else:
        shutil.copytree(written["fp32"], package)
        target = next(package.rglob("weight.bin" if damage == "truncated" else "model.mlmodel"))
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 3] if damage == "truncated" else data.replace(b"gelu", b"gelx"))
    image = samples_dir / "ISIC_0000002.jpg"
    done = run_cli("predict", package, image)
    assert done.returncode == 2
    assert_one_line_error(done, str(package))


def test_package_is_an_image_classifier_with_metadata(converted_coreml):
    """The demo student's packages from `edgeskin convert --target coreml`: what Xcode shows."""
    import coremltools as ct

    from edgeskin.model_loading import load_checkpoint
    from edgeskin.runtime import load

    classes = load_checkpoint(DEMO_STUDENT).config.class_names
    out, manifest = converted_coreml
    entries = [a for a in manifest["artifacts"] if a["target"] == "coreml"]
    assert {a["recipe"] for a in entries} == {"fp32", "fp16", "w8"}
    for entry in entries:
        assert entry["minimum_deployment_target"] == "iOS16" and entry["verdict"] == "pass"
        assert "captured with torch.export" in entry["notes"]
        spec = ct.utils.load_spec(str(out / entry["file"]))
        (image,) = spec.description.input
        assert image.type.WhichOneof("Type") == "imageType"
        assert (image.type.imageType.width, image.type.imageType.height) == (224, 224)
        assert image.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
        assert list(spec.mlProgram.functions) == ["main"]
        assert spec.description.predictedFeatureName == "label"
        assert {o.name for o in spec.description.output} == {"label", "label_probs", "logits"}
        assert "edgeskin" in spec.description.metadata.author and spec.description.metadata.license
        assert "edgeskin" in spec.description.metadata.userDefined
        predictor = load(out / entry["file"])
        assert list(predictor.metadata.class_names) == predictor.backend.classes == list(classes)
        assert predictor.metadata.recipe == entry["recipe"] and predictor.runtime.startswith("Core ML")


@pytest.fixture(scope="module")
def converted_coreml(converted):
    """The Core ML packages of the session's `edgeskin convert --target all` (fp32, fp16, w8)."""
    out, manifest, _, stderr = converted
    assert {a["recipe"] for a in manifest["artifacts"] if a["target"] == "coreml"} == {"fp32", "fp16", "w8"}, stderr
    return out, manifest


def test_package_names_its_checkpoint_and_lists_its_files(converted_coreml, samples_dir):
    """What Xcode's model summary shows (version, one-line description, author, licence) and a
    package folder that holds exactly what Manifest.json lists."""
    import hashlib

    import coremltools as ct

    from edgeskin.model_loading import load_checkpoint
    from edgeskin.runtime import load

    classes = load_checkpoint(DEMO_STUDENT).config.class_names
    version = hashlib.sha256(DEMO_STUDENT.read_bytes()).hexdigest()[:12]
    out, manifest = converted_coreml
    for entry in (a for a in manifest["artifacts"] if a["target"] == "coreml"):
        package = out / entry["file"]
        spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
        meta = spec.description.metadata
        assert meta.versionString == version
        assert "\n" not in meta.shortDescription
        assert all(part in meta.shortDescription for part in ("skindistilvit-ti6", "exit 6", f"recipe {entry['recipe']}", *classes))
        assert "edgeskin" in meta.author and "clinical" in meta.license
        assert all(f.shortDescription for f in [*spec.description.input, *spec.description.output])
        assert _files(package) == _listed(package)
        prediction = load(package, coreml_checker=True).predict(samples_dir / "ISIC_0000002.jpg")[0]
        assert prediction.label in classes and abs(float(prediction.probabilities.sum()) - 1) < 1e-3


def test_demo_student_fp32_matches_pytorch_on_real_images(converted_coreml, sample_pixels):
    """The acceptance figure: the bundled student's fp32 package vs PyTorch, 1e-4 relative."""
    from edgeskin.model_loading import load_checkpoint

    out, manifest = converted_coreml
    entry = next(a for a in manifest["artifacts"] if a["target"] == "coreml" and a["recipe"] == "fp32")
    loaded = load_checkpoint(DEMO_STUDENT)
    assert _relative(_checker_logits(out / entry["file"], sample_pixels), _torch_logits(loaded.model, sample_pixels, 6)) <= 1e-4


@pytest.mark.skipif(platform.system() != "Darwin", reason="platform fact: MLModel.predict (the Core ML framework) exists on macOS only")
def test_macos_core_ml_agrees_with_the_checker(converted_coreml, sample_pixels):
    from edgeskin.runtime.coreml import CoreMLBackend

    out, manifest = converted_coreml
    entry = next(a for a in manifest["artifacts"] if a["target"] == "coreml" and a["recipe"] == "fp32")
    backend = CoreMLBackend(out / entry["file"])
    core_ml = np.concatenate([backend.run(p.transpose(2, 0, 1)[None].astype(np.float32))[LOGITS] for p in sample_pixels[:4]])
    assert _relative(core_ml, _checker_logits(out / entry["file"], sample_pixels[:4])) <= 1e-3


def test_divergence_reads_the_core_ml_program(converted_coreml, sample_pixels, tmp_path):
    """Scale block 3's qkv weight inside a package: the block-by-block analysis, which reads the
    program's own residual stream, says the error starts at block 3."""
    from edgeskin.divergence import locate_divergence
    from edgeskin.model_loading import load_checkpoint
    from edgeskin.runtime import load
    from edgeskin.runtime.mlpackage import read_package

    out, manifest = converted_coreml
    entry = next(a for a in manifest["artifacts"] if a["target"] == "coreml" and a["recipe"] == "fp32")
    package = tmp_path / "skindistilvit-ti6-e6-fp32.mlpackage"
    shutil.copytree(out / entry["file"], package)
    program = read_package(package).program
    const = {name: op.attributes["val"] for op in program.ops if op.type == "const" for name in op.outputs}
    qkv = [op for op in program.ops if op.type == "linear"][2 * 4]  # qkv, proj, fc1, fc2 per block
    weight = np.asarray(const[qkv.inputs["weight"][0].name], np.float32)
    weights = next(package.rglob("weight.bin"))
    data = bytearray(weights.read_bytes())
    at = data.find(weight.tobytes())
    data[at:at + weight.nbytes] = (weight * 1.2).astype(np.float32).tobytes()
    weights.write_bytes(bytes(data))

    model = load_checkpoint(DEMO_STUDENT).model
    clean = locate_divergence(load(out / entry["file"]), model, sample_pixels[:2])
    assert clean.first_jump == "none" and max(s.error for s in clean.stages) < 1e-4
    edited = locate_divergence(load(package), model, sample_pixels[:2])
    assert edited.first_jump == "block 3", edited.curve()
    assert edited.stages[2].error < 1e-4 < edited.stages[3].error  # embedding, block 1, block 2 | block 3


def test_tracer_is_the_fallback_when_torch_export_fails(sample_pixels, tmp_path, monkeypatch):
    import torch

    from edgeskin.converters.coreml import convert_coreml

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot capture this model")

    monkeypatch.setattr(torch.export, "export", refuse)
    model = perturbed_model("skindistilvit-ti2").eval()
    written, frontend = convert_coreml(model, 2, model.config.class_names, ["fp32"], sample_pixels[0], tmp_path)
    assert frontend == "torch.jit.trace"
    assert _relative(_checker_logits(written["fp32"], sample_pixels[:2]), _torch_logits(model, sample_pixels[:2], 2)) <= 1e-4


def test_model_version_given_replaces_the_checkpoint_digest(converted_coreml, tmp_path):
    """`convert --model-version 2.1.0` (ConvertRequest.model_version, carried in the edgeskin
    metadata) becomes the package's versionString; the one-line description stays."""
    from dataclasses import replace

    import coremltools as ct

    from edgeskin.converters.coreml import embed_coreml_metadata
    from edgeskin.runtime.formats import read_artifact_metadata

    out, manifest = converted_coreml
    package = out / next(a["file"] for a in manifest["artifacts"] if a["target"] == "coreml" and a["recipe"] == "fp32")
    meta = read_artifact_metadata(package)
    embed_coreml_metadata(package, replace(meta, model_version="2.1.0"), tmp_path / "versioned.mlpackage")
    spec = ct.models.MLModel(str(tmp_path / "versioned.mlpackage"), skip_model_load=True).get_spec()
    assert spec.description.metadata.versionString == "2.1.0"
    assert read_artifact_metadata(tmp_path / "versioned.mlpackage").model_version == "2.1.0"
    assert _files(tmp_path / "versioned.mlpackage") == _listed(tmp_path / "versioned.mlpackage")
