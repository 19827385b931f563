"""TFLite Metadata in every .tflite: what MediaPipe Tasks' ImageClassifier and the TFLite Task
Library need to load a float-input classifier as it is (name, version, description, the image
input's normalization, the class labels as an associated labels.txt on the probabilities output).

Written by MediaPipe's metadata writer, in its own environment (converters/worker_env.py): the
graph normalizes inside, so the input is declared as mean 0 / std 1 over 0..255 pixels and
MediaPipe feeds the pixels edgeskin's contract expects. The "edgeskin" metadata entry is written
first and kept; the label file is appended to the flatbuffer as a zip, which every TFLite runtime
ignores.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from edgeskin.converters import descriptions
from edgeskin.converters.worker_env import WorkerEnvironment
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.metadata import LABEL_FILE, ArtifactMetadata

MEDIAPIPE = WorkerEnvironment("EDGESKIN_MEDIAPIPE_PYTHON", ".venv-mediapipe", "TFLite metadata (MediaPipe's writer)",
                              "install", "mediapipe 0.10.21 (constraints-mediapipe.txt)")
WORKER = Path(__file__).resolve().with_name("tflite_metadata_worker.py")
# the graph takes 0..255 RGB and normalizes inside: MediaPipe must pass pixels through unchanged
PASS_THROUGH = {"mean": [0.0], "std": [1.0]}
OUTPUT_DESCRIPTIONS = {"probabilities": f"probability of each class (softmax), in the order of {LABEL_FILE}",
                       "logits": f"class logits before softmax, in the order of {LABEL_FILE}"}


def metadata_job(metadata: ArtifactMetadata) -> dict:
    """What the worker writes, all taken from edgeskin's own metadata of the same file."""
    bad = [name for name in metadata.class_names if not name.strip() or "\n" in name or "\r" in name]
    if bad:
        raise EdgeskinError(f"class name {bad[0]!r} cannot be a line of {LABEL_FILE}")
    size = metadata.contract.preprocess.size
    return {"name": descriptions.model_name(metadata), "version": descriptions.model_version(metadata),
            "description": descriptions.description(metadata, list(metadata.outputs)), "author": descriptions.AUTHOR,
            "license": descriptions.LICENSE, "label_file": LABEL_FILE,
            "input": {"name": "pixels", "description": f"RGB image, {size}x{size}, pixel values 0-255 (normalization "
                                                       "is inside the model)", **PASS_THROUGH},
            # labels on the probabilities only: MediaPipe reports each output as a head, and the logits'
            # range is not a score's
            "outputs": [{"name": role, "description": OUTPUT_DESCRIPTIONS[role],
                         "labels": list(metadata.class_names) if role == "probabilities" else None}
                        for role in metadata.outputs]}


def write_standard_metadata(tflite: bytes, metadata: ArtifactMetadata, workdir: Path) -> bytes:
    """The same model with TFLite Metadata and labels.txt added by MediaPipe's writer."""
    job = metadata_job(metadata)
    MEDIAPIPE.python()  # before any file is written: without the environment, one line saying how to build it
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".tflite-metadata-") as folder:
        folder = Path(folder).resolve()
        (folder / "model.tflite").write_bytes(tflite)
        job.update(model=str(folder / "model.tflite"), output=str(folder / "with-metadata.tflite"))
        (folder / "job.json").write_text(json.dumps(job))
        MEDIAPIPE.run(WORKER, folder / "job.json", folder / "writer.log", "MediaPipe's TFLite metadata writer")
        return (folder / "with-metadata.tflite").read_bytes()
