"""Reading a .tflite file's metadata through the TFLite schema's generated classes.

The flatbuffers are built here with the schema's object API (a few hundred bytes, no conversion),
so the hostile cases run in a second: whatever the bytes, the reader answers with entries or with
one EdgeskinError line naming the file, never another exception.
"""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest

from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.formats import read_artifact_metadata
from edgeskin.runtime.metadata import ArtifactMetadata, read_tflite_metadata

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffer_utils = pytest.importorskip("ai_edge_litert.tools.flatbuffer_utils")

ENTRIES = {"edgeskin": b'{"model": "tiny"}', "min_runtime_version": b"1.5.0"}


def _buffer(payload: bytes = b""):
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8) if payload else None
    return buffer


def tiny_model(entries: dict[str, bytes], buffer_index: int | None = None):
    """A Model without a graph: buffer 0 empty (TFLite's convention), one buffer per metadata entry."""
    model = schema.ModelT()
    model.version, model.subgraphs, model.buffers, model.metadata = 3, [], [_buffer()], []
    for name, payload in entries.items():
        model.buffers.append(_buffer(payload))
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1 if buffer_index is None else buffer_index
        model.metadata.append(entry)
    return model


def tiny_tflite(entries: dict[str, bytes], buffer_index: int | None = None) -> bytes:
    return flatbuffer_utils.convert_object_to_bytearray(tiny_model(entries, buffer_index))


def external_tflite(payload: bytes, claimed_size: int | None = None) -> bytes:
    """A metadata buffer stored after the flatbuffer (offset/size), as in models over 2 GB."""
    model = tiny_model({"edgeskin": b""})
    outside = model.buffers[1]
    outside.offset, outside.size = 1, claimed_size or len(payload)  # nonzero first, so the length does not change
    outside.offset = len(flatbuffer_utils.convert_object_to_bytearray(model))
    return flatbuffer_utils.convert_object_to_bytearray(model, extra_buffer=payload)


def assert_one_line(exc: EdgeskinError, source: str, *fragments: str) -> None:
    message = str(exc)
    assert message.startswith(f"{source}: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_entries_are_read_by_name():
    assert read_tflite_metadata(tiny_tflite(ENTRIES)) == ENTRIES


def test_a_model_without_metadata_has_no_entries(tmp_path):
    data = tiny_tflite({})
    assert read_tflite_metadata(data) == {}
    (tmp_path / "plain.tflite").write_bytes(data)
    with pytest.raises(EdgeskinError) as caught:
        read_artifact_metadata(tmp_path / "plain.tflite")
    assert_one_line(caught.value, str(tmp_path / "plain.tflite"), "has no edgeskin metadata")


def test_what_embed_metadata_writes_is_read_back(tmp_path):
    from edgeskin.converters.tflite import embed_metadata

    metadata = ArtifactMetadata(model="tiny", exit=1, recipe="fp32", target="tflite", class_names=("MEL", "NV"))
    path = tmp_path / "tiny.tflite"
    path.write_bytes(embed_metadata(tiny_tflite({"edgeskin": b"stale"}), metadata))  # replaced, not duplicated
    assert read_artifact_metadata(path) == metadata


def test_a_buffer_stored_after_the_flatbuffer():
    assert read_tflite_metadata(external_tflite(b'{"model": "huge"}')) == {"edgeskin": b'{"model": "huge"}'}


@pytest.mark.parametrize("data", [b"", b"TFL3", b"\x00" * 64, b"\x89PNG\r\n\x1a\n" + bytes(56), b"PK\x03\x04" + bytes(60)])
def test_not_a_tflite_file(data):
    with pytest.raises(EdgeskinError) as caught:
        read_tflite_metadata(data, "junk.tflite")
    assert_one_line(caught.value, "junk.tflite", "not a TFLite model")


def test_out_of_range_buffer_index():
    with pytest.raises(EdgeskinError) as caught:
        read_tflite_metadata(tiny_tflite(ENTRIES, buffer_index=7), "bad.tflite")
    assert_one_line(caught.value, "bad.tflite", "metadata buffer index 7 out of range")


def test_a_buffer_running_past_the_end_of_the_file():
    with pytest.raises(EdgeskinError) as caught:
        read_tflite_metadata(external_tflite(b"{}", claimed_size=1000), "cut.tflite")
    assert_one_line(caught.value, "cut.tflite", "corrupt or truncated", "runs past the end")


def _outcome(data: bytes, expected: dict[str, bytes]) -> str:
    """'same', or the error's message: any other exception (a traceback for the user) fails the test."""
    try:
        entries = read_tflite_metadata(data, "bad.tflite")
    except EdgeskinError as exc:
        assert_one_line(exc, "bad.tflite")
        return str(exc)
    return "same" if entries == expected else "other entries"


def test_every_truncation_is_one_error_line():
    data = tiny_tflite(ENTRIES)
    outcomes = [_outcome(data[:cut], ENTRIES) for cut in range(len(data))]
    assert all(o.startswith("bad.tflite: not a TFLite model") for o in outcomes[:8])
    assert sum("corrupt or truncated TFLite file" in o for o in outcomes) > len(data) // 2, set(outcomes)
    assert "other entries" not in outcomes  # a cut file never reads as different metadata


def test_random_bytes_and_flipped_bytes_are_one_error_line():
    """Random tails after the identifier, and valid files with a few bytes changed (seeded)."""
    rng = random.Random(0)
    data = tiny_tflite(ENTRIES)
    outcomes = []
    for _ in range(500):
        tail = rng.randbytes(rng.randrange(0, 300))
        outcomes.append(_outcome(rng.randbytes(4) + b"TFL3" + tail, ENTRIES))
    for _ in range(1500):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            flipped[rng.randrange(8, len(flipped))] = rng.randrange(256)
        outcomes.append(_outcome(bytes(flipped), ENTRIES))
    assert any("corrupt or truncated" in o for o in outcomes) and any("out of range" in o for o in outcomes)


def test_without_any_schema_module_the_error_says_what_to_install(monkeypatch):
    for name in ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated", "tflite"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    with pytest.raises(EdgeskinError) as caught:
        read_tflite_metadata(tiny_tflite(ENTRIES), "model.tflite")
    assert_one_line(caught.value, "model.tflite", "needs ai-edge-litert: pip install 'edgeskin[pi]'")


def test_tensorflow_schema_is_the_fallback(monkeypatch):
    """TensorFlow ships the same generated classes as ai-edge-litert; the main environment has no
    TensorFlow any more, so its module is stood in for by ai-edge-litert's (same schema, same code)."""
    import types

    from ai_edge_litert import schema_py_generated

    stand_in = types.ModuleType("tensorflow.lite.python.schema_py_generated")
    stand_in.__dict__.update({k: v for k, v in vars(schema_py_generated).items() if not k.startswith("__")})
    monkeypatch.setitem(sys.modules, "tensorflow.lite.python.schema_py_generated", stand_in)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.schema_py_generated", None)
    assert read_tflite_metadata(tiny_tflite(ENTRIES)) == ENTRIES
    assert read_tflite_metadata(external_tflite(b"{}")) == {"edgeskin": b"{}"}
