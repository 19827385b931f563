"""FLOPs of one inference, counted from each artifact's own graph (and PyTorch's, with its FLOP counter).

What is counted: the matrix work, 2 FLOPs per multiply-add, of fully connected / linear layers,
(batched) matmuls, attention and convolutions, with shapes read from the graph. Elementwise ops,
LayerNorm and Softmax are left out, as every FLOP counter for transformers does (they are under
2% of a ViT's). An anytime file counts every stage: the full depth.
"""

from __future__ import annotations

from math import prod
from pathlib import Path

import numpy as np


def _tflite_flops(path: Path) -> int:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    ops = schema.BuiltinOperator
    total = 0
    for graph in model.subgraphs:
        shape = [tuple(int(d) for d in (t.shape if t.shape is not None else ())) for t in graph.tensors]
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = max(code.builtinCode, code.deprecatedBuiltinCode)
            out = prod(shape[op.outputs[0]])
            if kind == ops.FULLY_CONNECTED:
                total += 2 * out * shape[op.inputs[1]][-1]
            elif kind == ops.BATCH_MATMUL:
                adjoint = getattr(op.builtinOptions, "adjX", False)
                total += 2 * out * shape[op.inputs[0]][-2 if adjoint else -1]
            elif kind == ops.CONV_2D:  # weights O, H, W, I
                total += 2 * out * prod(shape[op.inputs[1]][1:])
            elif kind == ops.DEPTHWISE_CONV_2D:  # weights 1, H, W, C
                total += 2 * out * prod(shape[op.inputs[1]][1:3])
    return total


def _onnx_flops(path: Path) -> int:
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)  # the batch of 1 through Reshape
    graph = model.graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        shapes[info.name] = tuple(d.dim_value for d in info.type.tensor_type.shape.dim)
    total = 0
    for node in graph.node:
        out = prod(shapes.get(node.output[0], ()))
        if node.op_type == "MatMul":
            total += 2 * out * shapes[node.input[0]][-1]
        elif node.op_type == "Gemm":
            transposed = any(a.name == "transA" and a.i for a in node.attribute)
            total += 2 * out * shapes[node.input[0]][0 if transposed else -1]
        elif node.op_type == "Conv":  # weights O, I/groups, kH, kW
            total += 2 * out * prod(shapes[node.input[1]][1:])
    return total


def _mil_shape(binding: list, types: dict) -> tuple[int, ...]:
    """The shape of an op's input: a constant written inline, or a variable of the program."""
    value = binding[0]
    return tuple(value.shape) if isinstance(value, np.ndarray) else tuple(types[value.name].shape or ())


def _mil_value(binding: list, constants: dict):
    """An op's input value: written inline, or a const op's."""
    value = binding[0]
    return constants[value.name] if hasattr(value, "name") else value


def _mil_flops(op, types: dict, constants: dict) -> int:
    out = prod(op.output_info[0].shape or ())
    if op.type == "linear":
        return 2 * out * _mil_shape(op.inputs["weight"], types)[-1]
    if op.type == "matmul":
        transposed = bool(_mil_value(op.inputs.get("transpose_x", [False]), constants))
        return 2 * out * _mil_shape(op.inputs["x"], types)[-2 if transposed else -1]
    if op.type == "conv":
        return 2 * out * prod(_mil_shape(op.inputs["weight"], types)[1:])
    if op.type == "scaled_dot_product_attention":
        query, key, value = (_mil_shape(op.inputs[n], types) for n in ("query", "key", "value"))
        return 2 * prod(query[:-1]) * key[-2] * (query[-1] + value[-1])
    return 0


def _coreml_flops(path: Path) -> int:
    from edgeskin.runtime.mlpackage import read_functions

    total = 0
    for package in read_functions(path).values():
        program = package.program
        types = program.types()
        constants = {op.outputs[0]: op.attributes.get("val") for op in program.ops if op.type == "const"}
        total += sum(_mil_flops(op, types, constants) for op in program.ops)
    return total


COUNTERS = {".tflite": _tflite_flops, ".onnx": _onnx_flops, ".mlpackage": _coreml_flops}


def artifact_flops(path: str | Path) -> int | None:
    """FLOPs of one image through the artifact's graph; None for a format without a counter."""
    path = Path(path)
    counter = COUNTERS.get(path.suffix)
    return counter(path) if counter else None


def torch_flops(module, example) -> int:
    """FLOPs of one call, by PyTorch's own counter (matmuls, convolutions, attention)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    # the math kernel: PyTorch's counter has no formula for the fused CPU attention kernel
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(example)
    return int(counter.get_total_flops())
