"""Where does an artifact start to differ from PyTorch? The CLS token, block by block.

A final-logit error says *that* an artifact is wrong, not *where*. Here the residual stream of
the converted graph is found structurally (the input of the first normalization, then each add
that consumes it: two per transformer block), its values are read from the artifact itself
(ONNX: the tensors exposed as extra graph outputs; TFLite: the interpreter keeping every
intermediate tensor; Core ML: the numpy checker keeping every variable of the program), and
compared with the same points of the PyTorch model. Tensor names are not used: onnx2tf does not
keep them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.formats import format_of, resolve
from edgeskin.runtime.predictions import model_input
from edgeskin.runtime.predictor import Predictor

JUMP_FACTOR = 5.0  # error must grow at least this much from the stage before
SIGNIFICANT = 1e-3  # ... and reach this relative error (fp32 round-off is ~1e-6)
NOISE_FLOOR = 1e-6


@dataclass(frozen=True)
class _Op:
    type: str
    inputs: tuple
    outputs: tuple


@dataclass(frozen=True)
class Stage:
    name: str  # "embedding", "block 1", ..., "logits"
    error: float  # relative L2 error ||artifact - reference|| / ||reference||, mean over images


@dataclass(frozen=True)
class Divergence:
    stages: tuple[Stage, ...]
    first_jump: str  # the stage where the error starts
    explanation: str
    images: int

    def to_dict(self) -> dict:
        return {"stages": [{"name": s.name, "error": s.error} for s in self.stages], "first_jump": self.first_jump,
                "explanation": self.explanation, "images": self.images}

    def curve(self) -> str:
        """The error curve as text: one line per stage, with its growth over the stage before (the
        parity report draws it on a log axis: divergence-<file>.png)."""
        lines, previous = [], None
        for stage in self.stages:
            growth = f"x{stage.error / previous:.2f}" if previous else ""
            mark = "  <- starts here" if stage.name == self.first_jump else ""
            lines.append(f"  {stage.name:<10} {stage.error:>10.3g}  {growth:>8}{mark}")
            previous = stage.error or None
        return "\n".join(lines)


def residual_stream(ops: list[_Op], shapes: dict, norm_types: set[str], add_types: set[str]) -> list:
    """Tensor ids of the residual stream, in order: embedding output, then after each residual add."""
    first_norm = next((op for op in ops if op.type in norm_types), None)
    if first_norm is None:
        return []
    stream = [first_norm.inputs[0]]
    for op in ops:
        if op.type in add_types and stream[-1] in op.inputs and shapes.get(op.outputs[0]) == shapes.get(stream[-1]):
            stream.append(op.outputs[0])
    return stream


def tflite_stream(predictor: Predictor, pixels: np.ndarray, blocks: int) -> list[list[np.ndarray]]:
    from edgeskin.runtime.backends import tflite_interpreter_class

    interpreter_class = tflite_interpreter_class()[0]
    with warnings.catch_warnings():  # "for debugging purposes only": that is what this is
        warnings.simplefilter("ignore")
        interpreter = interpreter_class(model_path=str(predictor.path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = [_Op(o["op_name"], tuple(int(i) for i in o["inputs"]), tuple(int(i) for i in o["outputs"]))
           for o in interpreter._get_ops_details()]
    shapes = {i: tuple(d["shape"]) for i, d in details.items()}
    stream = _stage_points(residual_stream(ops, shapes, {"MEAN"}, {"ADD"}), blocks, predictor.path)
    values = []
    for image in pixels:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], model_input(image, "NHWC", predictor.input))
        interpreter.invoke()
        values.append([_dequantized(interpreter.get_tensor(t), details[t]) for t in stream])
    return values


def _dequantized(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    value = value.astype(np.float32)
    return (value - zero_point) * scale if scale else value


def onnx_stream(predictor: Predictor, pixels: np.ndarray, blocks: int) -> list[list[np.ndarray]]:
    import onnx
    import onnxruntime as ort

    model = onnx.shape_inference.infer_shapes(onnx.load(str(predictor.path)))
    shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in model.graph.value_info}
    ops = [_Op(n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node]
    stream = _stage_points(residual_stream(ops, shapes, {"LayerNormalization", "ReduceMean"}, {"Add"}), blocks, predictor.path)
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in stream if t not in known)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(stream, {name: model_input(image, "NCHW", predictor.input)}) for image in pixels]


def coreml_stream(predictor: Predictor, pixels: np.ndarray, blocks: int) -> list[list[np.ndarray]]:
    """The Core ML program's own values, from the numpy checker keeping every variable."""
    from edgeskin.runtime.coreml import CoreMLCheckerBackend
    from edgeskin.runtime.mlpackage import Ref

    backend = predictor.backend  # on macOS that is Core ML itself, which cannot show intermediate values
    if not isinstance(backend, CoreMLCheckerBackend):
        backend = CoreMLCheckerBackend(predictor.path)
    ops, shapes = [], {}
    for op in backend.package.program.ops:
        ordered = [op.inputs.get("x", [])] + [b for name, b in op.inputs.items() if name != "x"]  # data input first
        ops.append(_Op(op.type, tuple(b.name for bindings in ordered for b in bindings if isinstance(b, Ref)), op.outputs))
        shapes.update(zip(op.outputs, (info.shape for info in op.output_info), strict=True))
    stream = _stage_points(residual_stream(ops, shapes, {"layer_norm"}, {"add"}), blocks, predictor.path)
    values = []
    for image in pixels:
        kept = backend.executor.run({backend.input_name: model_input(image, "NCHW", predictor.input)}, keep_all=True)
        values.append([np.asarray(kept[t], np.float32) for t in stream])
    return values


def _stage_points(stream: list, blocks: int, path) -> list:
    """Embedding output, then the output of each block (every second residual add)."""
    if len(stream) < 2 * blocks + 1:
        raise EdgeskinError.about(path, f"cannot locate the {blocks} transformer blocks in the converted graph "
                                  f"(found {max(0, len(stream) - 1)} residual adds)")
    return [stream[0]] + [stream[2 * k] for k in range(1, blocks + 1)]


def _relative_error(artifact: np.ndarray, reference: np.ndarray) -> float:
    artifact, reference = artifact.reshape(-1).astype(np.float64), reference.reshape(-1).astype(np.float64)
    return float(np.linalg.norm(artifact - reference) / max(np.linalg.norm(reference), 1e-12))


def _first_jump(stages: list[Stage]) -> tuple[str, str]:
    previous = None  # the input pixels are exact
    for stage in stages:
        if stage.error >= SIGNIFICANT and stage.error >= JUMP_FACTOR * max(previous or 0.0, NOISE_FLOOR):
            before = "exact input" if previous is None else f"{previous:.3g}"
            return stage.name, f"error starts at {stage.name}: {before} -> {stage.error:.3g}"
        previous = stage.error
    ratios = [b.error / max(a.error, NOISE_FLOOR) for a, b in zip(stages, stages[1:], strict=False)]
    if not ratios or stages[-1].error < SIGNIFICANT:
        return "none", f"no stage reaches a relative error of {SIGNIFICANT:g} (largest {max(s.error for s in stages):.3g})"
    k = int(np.argmax(ratios)) + 1
    return stages[k].name, f"error grows gradually; largest step at {stages[k].name}: {stages[k - 1].error:.3g} -> {stages[k].error:.3g}"


def locate_divergence(predictor: Predictor, model, pixels: np.ndarray) -> Divergence:
    """Compare the embedding output, the CLS token after each block and the logits of `predictor`'s
    artifact with `model` (the PyTorch reference) on `pixels` (uint8 N x size x size x 3). A generic
    module (edgeskin.models.wrapped) has no blocks to look inside: its logits are compared alone."""
    import torch

    blocks = predictor.metadata.exit
    reader = resolve(format_of(predictor.path).intermediates)
    has_blocks, stages = hasattr(model, "forward_cls_tokens"), []
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()
        if has_blocks:
            stages = _block_stages(reader(predictor, pixels, blocks), model.forward_cls_tokens(x, blocks, with_embedding=True))
        reference_logits = model(x, exit=blocks).numpy()
    logits = [predictor.run(p)["logits"] for p in pixels]
    stages.append(Stage("logits", float(np.mean([_relative_error(a, r) for a, r in zip(logits, reference_logits, strict=True)]))))
    first, explanation = _first_jump(stages)
    if not has_blocks:
        explanation = f"no transformer blocks to compare ({model.config.arch} is a generic module), logits only: {explanation}"
    return Divergence(tuple(stages), first, explanation, len(pixels))


def _block_stages(artifact_values: list[list[np.ndarray]], reference_tensors) -> list[Stage]:
    """The embedding (all tokens) and each block's CLS token: artifact vs reference, per stage."""
    reference = [t.numpy() for t in reference_tensors]
    names = ["embedding"] + [f"block {k}" for k in range(1, len(reference))]
    stages = []
    for s, name in enumerate(names):
        errors = []
        for i, values in enumerate(artifact_values):
            value = values[s].reshape(reference[s][i].shape[0], -1) if s == 0 else values[s].reshape(-1, reference[s].shape[-1])[0]
            errors.append(_relative_error(value, reference[s][i]))
        stages.append(Stage(name, float(np.mean(errors))))
    return stages
