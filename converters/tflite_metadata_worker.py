"""Writes TFLite Metadata (TFLITE_METADATA, the schema MediaPipe Tasks and the TFLite Task Library
read) into a .tflite file with MediaPipe's own metadata writer, inside the writer's environment
(.venv-mediapipe, constraints-mediapipe.txt).

Started by converters/tflite_metadata.py as `python -I tflite_metadata_worker.py JOB.json`; imports
only the standard library and mediapipe, so it runs from its file without edgeskin installed there.
Job keys: model, output (.tflite paths), name, version, description, author, license, input (name,
description, mean, std), outputs (a list in the graph's output order: name, description, labels or
null), label_file. Metadata entries already in the file (edgeskin's own) are kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def write(job: dict) -> bytes:
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, metadata_writer

    writer = metadata_writer.MetadataWriter.create(bytearray(Path(job["model"]).read_bytes()))
    # add_general_info takes a name and description only; GeneralMd also carries version, author, licence
    writer._general_md = metadata_info.GeneralMd(name=job["name"], version=job["version"], description=job["description"],
                                                 author=job["author"], licenses=job["license"])
    spec = job["input"]
    writer.add_image_input(norm_mean=spec["mean"], norm_std=spec["std"], name=spec["name"], description=spec["description"])
    for output in job["outputs"]:
        if output["labels"] is None:
            writer.add_feature_output(name=output["name"], description=output["description"])
        else:
            labels = metadata_writer.Labels().add(output["labels"], exported_filename=job["label_file"])
            writer.add_classification_output(labels, name=output["name"], description=output["description"])
    model, _ = writer.populate()
    return bytes(model)


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    Path(job["output"]).write_bytes(write(job))


if __name__ == "__main__":
    main()
