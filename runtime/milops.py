"""numpy definitions of the MIL ops a ViT classifier uses, with Core ML's semantics.

Each op takes its resolved inputs (name -> value, or list for variadic inputs) and returns its
outputs as a tuple. Arithmetic is done in float32; the executor rounds every result to the
type the program declares (float16 programs are rounded at each op, as Core ML stores them).
Weight decompression (constexpr_*) follows the iOS 16 op definitions, and iOS 18's where they
differ (the opset of multifunction packages).
"""

from __future__ import annotations

import numpy as np

from .errors import EdgeskinError

_NUMPY_DTYPE = {"fp16": "float16", "fp32": "float32", "fp64": "float64", "int8": "int8", "uint8": "uint8", "int16": "int16",
                "int32": "int32", "int64": "int64", "bool": "bool"}


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _axis_list(value) -> list[int]:
    return [int(a) for a in np.atleast_1d(value)]


def _erf(x: np.ndarray) -> np.ndarray:
    """erf without scipy: Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 (float32 resolution)."""
    x64 = x.astype(np.float64)
    sign, a = np.sign(x64), np.abs(x64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x, mode="EXACT"):
    x = _f32(x)
    if mode == "EXACT":
        return (0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))).astype(np.float32),
    if mode == "TANH_APPROXIMATION":
        return (0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))).astype(np.float32),
    if mode == "SIGMOID_APPROXIMATION":
        return (x / (1.0 + np.exp(-1.702 * x))).astype(np.float32),
    raise EdgeskinError(f"unsupported gelu mode {mode}")


def softmax(x, axis=-1):
    x = _f32(x)
    shifted = np.exp(x - x.max(axis=int(axis), keepdims=True))
    return shifted / shifted.sum(axis=int(axis), keepdims=True),


def scaled_dot_product_attention(query, key, value, attn_mask=None):
    """iOS18: softmax(Q K^T / sqrt(E) + mask) V; a boolean mask keeps where True."""
    query, key = _f32(query), _f32(key)
    scores = query @ np.swapaxes(key, -1, -2) / np.sqrt(np.float32(query.shape[-1]))
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + _f32(mask)
    return softmax(scores, -1)[0] @ _f32(value),


def layer_norm(x, axes, gamma=None, beta=None, epsilon=1e-5):
    x = _f32(x)
    axes = tuple(_axis_list(axes))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + np.float32(epsilon))
    if gamma is not None:
        y = y * _f32(gamma)
    if beta is not None:
        y = y + _f32(beta)
    return y,


def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    x = _f32(x)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - _f32(mean).reshape(shape)) / np.sqrt(_f32(variance).reshape(shape) + np.float32(epsilon))
    if gamma is not None:
        y = y * _f32(gamma).reshape(shape)
    if beta is not None:
        y = y + _f32(beta).reshape(shape)
    return y,


def linear(x, weight, bias=None):
    y = _f32(x) @ _f32(weight).T
    return (y + _f32(bias) if bias is not None else y),


def matmul(x, y, transpose_x=False, transpose_y=False):
    x, y = _f32(x), _f32(y)
    if transpose_x:
        x = np.swapaxes(x, -1, -2)
    if transpose_y:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y),


def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    """2-D convolution, groups 1, no dilation (a ViT's patch embedding and similar)."""
    x, weight = _f32(x), _f32(weight)
    if x.ndim != 4 or int(groups) != 1 or (dilations is not None and any(int(d) != 1 for d in dilations)):
        raise EdgeskinError("unsupported conv configuration (only 2-D, groups=1, dilation 1)")
    sh, sw = (int(s) for s in (strides if strides is not None else (1, 1)))
    kh, kw = weight.shape[2:]
    if pad_type == "custom" and pad is not None:
        top, bottom, left, right = (int(p) for p in pad)
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    elif pad_type not in ("valid", "custom"):
        raise EdgeskinError(f"unsupported conv pad_type {pad_type}")
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    y = np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True)
    if bias is not None:
        y = y + _f32(bias).reshape(1, -1, 1, 1)
    return y,


def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    x = np.asarray(x)
    index = []
    for axis in range(x.ndim):
        step = int(stride[axis]) if stride is not None else 1
        start = None if begin_mask is not None and begin_mask[axis] else int(begin[axis])
        stop = None if end_mask is not None and end_mask[axis] else int(end[axis])
        if squeeze_mask is not None and squeeze_mask[axis]:
            index.append(int(begin[axis]))
        else:
            index.append(slice(start, stop, step))
    return x[tuple(index)],


def split(x, axis, split_sizes=None, num_splits=None):
    x = np.asarray(x)
    axis = int(axis)
    if split_sizes is not None:
        cuts = np.cumsum([int(s) for s in split_sizes])[:-1]
    else:
        cuts = int(num_splits)
    return tuple(np.split(x, cuts, axis=axis))


def concat(values, axis, interleave=False):
    if interleave:
        raise EdgeskinError("unsupported concat with interleave=True")
    return np.concatenate([np.asarray(v) for v in values], axis=int(axis)),


def cast(x, dtype):
    return np.asarray(x).astype(_NUMPY_DTYPE[str(dtype)]),


def classify(probabilities, classes):
    probabilities = _f32(probabilities).reshape(-1)
    labels = list(classes)
    best = int(np.argmax(probabilities))
    return str(labels[best]), {str(label): float(p) for label, p in zip(labels, probabilities, strict=True)}


def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    """iOS16: w = (q - zero_point) * scale, with per-channel parameters along `axis`."""
    q = np.asarray(quantized_data).astype(np.float32)
    shape = [1] * q.ndim
    axis = int(axis) % q.ndim
    zero_point, scale = _f32(zero_point), _f32(scale)
    if zero_point.size > 1:
        zero_point = zero_point.reshape([-1 if i == axis else 1 for i in range(q.ndim)])
    if scale.size > 1:
        shape[axis] = -1
        scale = scale.reshape(shape)
    return ((q - zero_point) * scale),


def unpack_indices(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Core ML packs n-bit indices little-endian: the first index in the lowest bits of byte 0."""
    bitstream = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")[: count * bits]
    weights = (1 << np.arange(bits)).astype(np.int64)
    return bitstream.reshape(count, bits).astype(np.int64) @ weights


def constexpr_lut_to_dense(lut, indices, shape=None, vector_axis=None):
    """A palette and n-bit indices -> a dense tensor. iOS16 (attributes): one 2^n-entry palette,
    packed indices and the `shape`; iOS18 (inputs): unpacked indices of the weight's shape and a
    palette per block, lut shaped (blocks per axis..., 2^n, 1)."""
    lut = np.asarray(lut)
    if shape is None:
        return _lut_per_block(lut, np.asarray(indices).astype(np.int64)),
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    bits = int(np.log2(lut.size))
    if lut.ndim != 1 or 1 << bits != lut.size:
        raise EdgeskinError(f"unsupported palette of {lut.size} entries (expected a 1-D 2^n palette)")
    count = int(np.prod(shape))
    if np.asarray(indices).size * 8 < count * bits:
        raise EdgeskinError(f"palettized weight has {np.asarray(indices).size} index bytes, needs {count * bits / 8:g}")
    return lut[unpack_indices(indices, bits, count)].reshape(shape),


def _lut_per_block(lut: np.ndarray, indices: np.ndarray) -> np.ndarray:
    if lut.ndim != indices.ndim + 2 or lut.shape[-1] != 1:
        raise EdgeskinError(f"unsupported palette of shape {lut.shape} for a {indices.ndim}-D weight "
                            "(expected blocks per axis, entries, 1: vector palettes are not supported)")
    blocks = [np.arange(n) // _block_size(n, b) for n, b in zip(indices.shape, lut.shape[:-2], strict=True)]
    return lut[..., 0][(*np.ix_(*blocks), indices)]


def _block_size(length: int, blocks: int) -> int:
    if blocks < 1 or length % blocks:
        raise EdgeskinError(f"{blocks} blocks do not divide an axis of {length}")
    return length // blocks


def _per_block(value, shape: tuple[int, ...]) -> np.ndarray:
    """A per-block parameter (scale, offset) repeated to the full tensor's shape."""
    value = _f32(value)
    if value.ndim != len(shape):
        raise EdgeskinError(f"a parameter of shape {value.shape} for a {len(shape)}-D weight")
    for axis, (length, blocks) in enumerate(zip(shape, value.shape, strict=True)):
        value = np.repeat(value, _block_size(length, blocks), axis=axis)
    return value


def constexpr_blockwise_shift_scale(data, scale, offset=None):
    """iOS18: w = scale * (data - offset), scale and offset per block of the weight."""
    data = np.asarray(data).astype(np.float32)
    shifted = data - _per_block(offset, data.shape) if offset is not None else data
    return shifted * _per_block(scale, data.shape),


def _binary(function):
    return lambda x, y: (function(_f32(x), _f32(y)),)


OPS = {
    "add": _binary(np.add), "sub": _binary(np.subtract), "mul": _binary(np.multiply), "real_div": _binary(np.divide),
    "maximum": _binary(np.maximum), "minimum": _binary(np.minimum),
    "reshape": lambda x, shape: (np.reshape(x, [int(s) for s in shape]),),
    "transpose": lambda x, perm: (np.transpose(x, [int(p) for p in perm]),),
    "squeeze": lambda x, axes=None: (np.squeeze(x, axis=tuple(_axis_list(axes)) if axes is not None else None),),
    "expand_dims": lambda x, axes: (np.expand_dims(x, tuple(_axis_list(axes))),),
    "relu": lambda x: (np.maximum(_f32(x), 0),),
    "tanh": lambda x: (np.tanh(_f32(x)),),
    "sqrt": lambda x: (np.sqrt(_f32(x)),),
    "rsqrt": lambda x, epsilon=1e-12: (1.0 / np.sqrt(_f32(x) + np.float32(epsilon)),),
    "reduce_mean": lambda x, axes=None, keep_dims=False: (np.mean(_f32(x), axis=tuple(_axis_list(axes)), keepdims=bool(keep_dims)),),
    "gelu": gelu, "softmax": softmax, "scaled_dot_product_attention": scaled_dot_product_attention, "layer_norm": layer_norm, "batch_norm": batch_norm, "linear": linear,
    "matmul": matmul, "conv": conv, "slice_by_index": slice_by_index, "split": split, "concat": concat, "cast": cast,
    "classify": classify, "constexpr_affine_dequantize": constexpr_affine_dequantize,
    "constexpr_lut_to_dense": constexpr_lut_to_dense, "constexpr_blockwise_shift_scale": constexpr_blockwise_shift_scale,
}
