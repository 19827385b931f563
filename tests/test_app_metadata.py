"""TFLite Metadata in every .tflite (converters/tflite_metadata.py), read back with MediaPipe's own
schema classes: what MediaPipe Tasks and the TFLite Task Library find in the file."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

import edgeskin
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.formats import read_artifact_metadata
from edgeskin.runtime.metadata import read_tflite_metadata
from tests.conftest import BUNDLED, perturbed_model
from tests.helpers import assert_one_line_error, run_console
from tests.hostile_files import rewrite_tflite_metadata

metadata_fb = pytest.importorskip("mediapipe.tasks.metadata.metadata_schema_py_generated")


def standard_metadata(path: Path):
    """(ModelMetadataT, packed files) of a .tflite: the TFLITE_METADATA entry and the appended zip."""
    data = path.read_bytes()
    entry = read_tflite_metadata(data, path)["TFLITE_METADATA"]
    assert metadata_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(entry, 0)
    model = metadata_fb.ModelMetadataT.InitFromObj(metadata_fb.ModelMetadata.GetRootAsModelMetadata(entry, 0))
    with zipfile.ZipFile(io.BytesIO(data)) as packed:
        files = {name: packed.read(name).decode() for name in packed.namelist()}
    return model, files


def test_tflite_file_carries_name_version_normalization_and_labels(tiny_tflite):
    meta = read_artifact_metadata(tiny_tflite)  # edgeskin's own entry, kept beside it
    model, files = standard_metadata(tiny_tflite)
    assert model.name.decode() == f"{meta.model} exit {meta.exit} fp32"
    assert model.version.decode() == meta.source_checkpoint_sha256[:12]
    description = model.description.decode()
    assert "\n" not in description and all(name in description for name in meta.class_names)
    assert "Outputs: probabilities, logits" in description and b"edgeskin" in model.author
    assert model.minParserVersion  # computed by the writer, not stamped by us
    (graph,) = model.subgraphMetadata
    (pixels,) = graph.inputTensorMetadata
    assert pixels.name.decode() == "pixels"
    assert pixels.content.contentPropertiesType == metadata_fb.ContentProperties.ImageProperties
    assert pixels.content.contentProperties.colorSpace == metadata_fb.ColorSpaceType.RGB
    (normalization,) = pixels.processUnits
    assert normalization.optionsType == metadata_fb.ProcessUnitOptions.NormalizationOptions
    assert list(normalization.options.mean) == [0.0] and list(normalization.options.std) == [1.0]  # the graph normalizes
    probabilities, logits = graph.outputTensorMetadata
    assert (probabilities.name.decode(), logits.name.decode()) == ("probabilities", "logits")
    (labels,) = probabilities.associatedFiles
    assert labels.name.decode() == "labels.txt" and labels.type == metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS
    assert not logits.associatedFiles  # a feature output: its range is not a score's
    assert files == {"labels.txt": "\n".join(meta.class_names)}


def test_info_names_the_app_metadata(tiny_tflite, tmp_path):
    done = run_console("info", str(tiny_tflite))
    assert done.returncode == 0 and "app meta   TFLite Metadata (MediaPipe, TFLite Task Library), labels.txt = the classes" in done.stdout
    # rewrites edgeskin's entry only, which drops the appended labels.txt
    stale = rewrite_tflite_metadata(tiny_tflite, tmp_path / "stale.tflite", class_names=("a", "b", "c", "d", "e", "f", "g", "h"))
    done = run_console("info", str(stale))
    assert done.returncode == 0 and "app meta   TFLite Metadata, but no readable labels.txt" in done.stdout


def test_model_version_is_written_and_checked(tmp_path):
    result = edgeskin.convert(perturbed_model("skindistilvit-ti2"), target="tflite", recipes=["fp32"], out=tmp_path / "v",
                              data=BUNDLED, model_version="3.0.0-rc1")
    path = result.artifacts[0].path
    assert standard_metadata(path)[0].version.decode() == "3.0.0-rc1"
    assert read_artifact_metadata(path).model_version == "3.0.0-rc1"
    for bad in ("", "two words", "x" * 65, "-starts-with-dash"):
        with pytest.raises(EdgeskinError, match="--model-version"):
            edgeskin.convert(perturbed_model("skindistilvit-ti2"), target="tflite", out=tmp_path / "never", model_version=bad)
    with pytest.raises(TypeError, match="model version must be a string"):
        edgeskin.convert(perturbed_model("skindistilvit-ti2"), target="tflite", out=tmp_path / "never", model_version=3)
    assert not (tmp_path / "never").exists()


def test_without_the_writer_environment_convert_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESKIN_MEDIAPIPE_PYTHON", str(tmp_path / "nowhere" / "python"))
    done = run_console("convert", "--out", str(tmp_path / "out"))
    assert_one_line_error(done, "make install", "EDGESKIN_MEDIAPIPE_PYTHON", "mediapipe 0.10.21")
    assert not (tmp_path / "out").exists()


def test_a_failing_writer_is_one_line_and_leaves_no_output(tmp_path, monkeypatch):
    """The writer's environment exists but the writer fails: its last line is the error, the conversion is undone."""
    worker = tmp_path / "worker.py"
    worker.write_text("import sys\nsys.exit('ValueError: the writer cannot read this model')\n")
    monkeypatch.setattr("edgeskin.converters.tflite_metadata.WORKER", worker)
    with pytest.raises(EdgeskinError, match="MediaPipe's TFLite metadata writer failed: .*cannot read this model"):
        edgeskin.convert(perturbed_model("skindistilvit-ti2"), target="tflite", recipes=["fp32"], out=tmp_path / "out",
                         data=BUNDLED)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_class_names_that_cannot_be_label_lines_are_refused(tiny_tflite):
    from dataclasses import replace

    from edgeskin.converters.tflite_metadata import metadata_job

    meta = read_artifact_metadata(tiny_tflite)
    with pytest.raises(EdgeskinError, match="cannot be a line of labels.txt"):
        metadata_job(replace(meta, class_names=("MEL", "N\nV")))


def test_digest_in_the_manifest_covers_the_label_file(tiny_tflite):
    """The manifest's sha256 is of the finished file, label zip included: the runtime's integrity check passes."""
    import json

    manifest = json.loads((tiny_tflite.parent / "manifest.json").read_text())
    (entry,) = manifest["artifacts"]
    assert entry["sha256"] == hashlib.sha256(tiny_tflite.read_bytes()).hexdigest()
    edgeskin.load(tiny_tflite)  # verified against that digest
