"""PyTorch -> ONNX: the deployable wrapper (uint8-range pixels in, probabilities + logits out).

Opset 17, static batch 1, NCHW float input in 0..255 with the normalization inside the graph.
torch 2.13 defaults to the dynamo exporter, which needs onnxscript and targets opset 18+; the
TorchScript exporter (dynamo=False) gives opset 17 with native LayerNormalization and the exact
Erf-GELU pattern that onnx2tf knows how to convert.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from edgeskin.converters.artifacts import bytes_embedder
from edgeskin.models import SkinViT, deployable
from edgeskin.runtime.metadata import METADATA_NAME, OUTPUT_ROLES, ArtifactMetadata

OPSET = 17
INPUT_NAME = "pixels"


def export_onnx_bytes(model: SkinViT, exit: int | None, example: np.ndarray) -> bytes:
    """Serialized ONNX of deployable(model, exit); `example` is one real uint8 HxWx3 image."""
    wrapper = deployable(model, exit, with_logits=True).eval()
    dummy = torch.from_numpy(example).permute(2, 0, 1)[None].float()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice is expected here
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (dummy,), buffer, opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=list(OUTPUT_ROLES), dynamo=False, do_constant_folding=True)
    return buffer.getvalue()


def with_metadata(onnx_bytes: bytes, metadata: ArtifactMetadata) -> bytes:
    """Embed edgeskin metadata as an ONNX metadata_props entry (readable by onnxruntime alone)."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    kept = [p for p in proto.metadata_props if p.key != METADATA_NAME]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, metadata.to_json()
    return proto.SerializeToString()


embed_metadata_file = bytes_embedder(with_metadata)  # the format table's embed column (runtime/formats.py)
