"""TFLite flatbuffer edits shared by both routes: output order and names, embedded metadata (edgeskin's
entry here, TFLite Metadata in converters/tflite_metadata.py), and
what a file holds (op types, tensor types), read without an interpreter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.metadata import METADATA_NAME, OUTPUT_ROLES, ArtifactMetadata

LINEAR_OPS = ("FULLY_CONNECTED", "CONV_2D")
OTHER_OPS = ("MEAN", "SOFTMAX", "GELU")  # LayerNorm's reductions, Softmax, GELU


@dataclass(frozen=True)
class FileTensorTypes:
    """The tensor types a .tflite file actually has, in the terms of recipes.TensorTypes."""

    linear_weights: frozenset[str]
    linear_activations: frozenset[str]
    other_activations: frozenset[str]
    io: frozenset[str]
    op_counts: dict[str, int]
    input_types: dict[str, frozenset[str]]  # per op type: the types of its first input (float32 = the op runs float)


def _read(tflite: bytes):
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))


def tensor_types(tflite: bytes) -> FileTensorTypes:
    """Weight and activation types of the linear ops (float16 weights count through their
    DEQUANTIZE), the other ops' inputs, and the graph's input/output types."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = _read(tflite)
    graph = model.subgraphs[0]
    type_name = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    producer = {int(out): op for op in graph.operators for out in op.outputs}

    def kind(index: int) -> str:
        return type_name[graph.tensors[index].type].lower()

    def weight_kind(index: int) -> str:
        op = producer.get(index)  # a float16 weight reaches the op through DEQUANTIZE
        if op is not None and flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == "DEQUANTIZE":
            return kind(int(op.inputs[0]))
        return kind(index)

    names = [flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in graph.operators]
    weights, activations, others, inputs = set(), set(), set(), {}
    for name, op in zip(names, graph.operators, strict=True):
        inputs.setdefault(name, set()).add(kind(int(op.inputs[0])))
        if name in LINEAR_OPS:
            activations.add(kind(int(op.inputs[0])))
            weights.add(weight_kind(int(op.inputs[1])))
        elif name in OTHER_OPS:
            others.add(kind(int(op.inputs[0])))
    io = {kind(int(i)) for i in list(graph.inputs) + list(graph.outputs)}
    return FileTensorTypes(frozenset(weights), frozenset(activations), frozenset(others), frozenset(io), dict(Counter(names)),
                           {name: frozenset(kinds) for name, kinds in inputs.items()})


def op_types(tflite: bytes) -> set[str]:
    """Builtin op names used by a .tflite model (read from the flatbuffer, no interpreter)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = _read(tflite)
    return {flatbuffer_utils.opcode_to_name(model, i) for i in range(len(model.operatorCodes))}


def declare_outputs(tflite: bytes, found: list[str]) -> bytes:
    """Put the outputs in the contract's order (OUTPUT_ROLES) and name them so, in the graph's
    output list, the tensors and every signature; the input is named `pixels`. `found`: the role of each output as converted
    (onnx2tf keeps or drops the ONNX names and order depending on the recipe; litert-torch names
    them output_0, output_1, and static int8 renames one "..._dequant")."""
    from ai_edge_litert.tools import flatbuffer_utils

    if sorted(found) != sorted(OUTPUT_ROLES):
        raise EdgeskinError(f"converted model's outputs are {found}, expected {', '.join(OUTPUT_ROLES)}")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    graph = model.subgraphs[0]
    role_of = {int(tensor): role for tensor, role in zip(graph.outputs, found, strict=True)}
    graph.outputs = [next(t for t, r in role_of.items() if r == role) for role in OUTPUT_ROLES]
    for tensor, role in role_of.items():
        graph.tensors[tensor].name = role
    graph.tensors[int(graph.inputs[0])].name = "pixels"  # litert-torch's is args_0
    if not model.signatureDefs:  # onnx2tf's dynamic-range file has none: give it the others' signature
        model.signatureDefs = [_signature(graph, role_of)]
    for signature in model.signatureDefs:
        # rebuilt from the graph's outputs: ai-edge-quantizer's static int8 leaves the signature
        # pointing at the tensor before its final DEQUANTIZE
        signature.outputs = [_tensor_map(role, next(t for t, r in role_of.items() if r == role)) for role in OUTPUT_ROLES]
        for entry in signature.inputs:
            entry.name = "pixels"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _tensor_map(name: str, index: int):
    from ai_edge_litert import schema_py_generated as schema

    entry = schema.TensorMapT()
    entry.name, entry.tensorIndex = name, index
    return entry


def _signature(graph, role_of: dict[int, str]):
    """A `serving_default` signature: input `pixels`, outputs by role (what onnx2tf writes elsewhere)."""
    from ai_edge_litert import schema_py_generated as schema

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = [_tensor_map("pixels", int(graph.inputs[0]))]
    signature.outputs = [_tensor_map(role, tensor) for tensor, role in role_of.items()]
    return signature


def embed_metadata(tflite: bytes, metadata: ArtifactMetadata) -> bytes:
    """Add (or replace) the "edgeskin" metadata entry; the model itself is untouched."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != METADATA_NAME] if model.metadata else []
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata.to_json().encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def embed_edgeskin_entry(probe: Path, metadata: ArtifactMetadata, destination: Path) -> None:
    """An anytime file's embed: the edgeskin entry only (MediaPipe cannot run stages: no TFLite Metadata)."""
    destination.write_bytes(embed_metadata(probe.read_bytes(), metadata))


def embed_metadata_file(probe: Path, metadata: ArtifactMetadata, destination: Path) -> None:
    """The format table's embed column (runtime/formats.py): the edgeskin entry, then TFLite
    Metadata and labels.txt. In that order: MediaPipe's writer appends the label file after the
    flatbuffer, which re-serializing the model (as embed_metadata does) would drop."""
    from edgeskin.converters.tflite_metadata import write_standard_metadata

    tagged = embed_metadata(probe.read_bytes(), metadata)
    destination.write_bytes(write_standard_metadata(tagged, metadata, destination.parent))
