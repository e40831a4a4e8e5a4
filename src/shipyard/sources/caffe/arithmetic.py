"""Caffe's layer arithmetic in numpy, written from Caffe's definitions (the layer-by-layer
reference).

Each function takes the layer's bottom blobs, its weight blobs and its parameters (the layer's
protobuf message as a dict, Caffe's defaults applied here) and returns its top blob. Only what
is needed to check a converted graph; plain loops are fine at test-net sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Layer = Callable[[list[np.ndarray], list[np.ndarray], dict], np.ndarray]


def _pair(params: dict, name: str, default: int) -> tuple[int, int]:
    """Caffe's spatial parameter: ``pad_h``/``pad_w`` (``kernel_h`` for ``kernel_size``), else
    ``name``
    (one value or two), else the default."""
    short = name.removesuffix("_size")
    if f"{short}_h" in params or f"{short}_w" in params:
        return int(params.get(f"{short}_h", default)), int(params.get(f"{short}_w", default))
    value = params.get(name, default)
    values = [int(v) for v in value] if isinstance(value, list) else [int(value)]
    values = values or [default]
    return (values[0], values[-1])


def convolution(bottoms, blobs, params) -> np.ndarray:
    p = params.get("convolution_param", {})
    x, weight = bottoms[0].astype(np.float64), blobs[0].astype(np.float64)
    (kh, kw), (sh, sw) = _pair(p, "kernel_size", 1), _pair(p, "stride", 1)
    (ph, pw), (dh, dw) = _pair(p, "pad", 0), _pair(p, "dilation", 1)
    group = int(p.get("group", 1))
    n, c, h, w = x.shape
    out_h, out_w = (
        (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
        (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1,
    )
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, weight.shape[0], out_h, out_w))
    per_in, per_out = c // group, weight.shape[0] // group
    for g in range(group):
        xs, ws = padded[:, g * per_in : (g + 1) * per_in], weight[g * per_out : (g + 1) * per_out]
        for i in range(kh):
            for j in range(kw):
                patch = xs[
                    :, :, i * dh : i * dh + sh * out_h : sh, j * dw : j * dw + sw * out_w : sw
                ]
                out[:, g * per_out : (g + 1) * per_out] += np.einsum(
                    "nchw,oc->nohw", patch, ws[:, :, i, j]
                )
    if p.get("bias_term", True) and len(blobs) > 1:
        out += blobs[1].reshape(1, -1, 1, 1)
    return out


def pooling(bottoms, blobs, params) -> np.ndarray:
    p = params.get("pooling_param", {})
    x = bottoms[0].astype(np.float64)
    n, c, h, w = x.shape
    if p.get("global_pooling"):
        (kh, kw), (sh, sw), (ph, pw) = (h, w), (1, 1), (0, 0)
    else:
        (kh, kw), (sh, sw), (ph, pw) = (
            _pair(p, "kernel_size", 1),
            _pair(p, "stride", 1),
            _pair(p, "pad", 0),
        )
    out_h, out_w = _pooled(h, kh, sh, ph), _pooled(w, kw, sw, pw)
    out = np.zeros((n, c, out_h, out_w))
    average = p.get("pool", "MAX") == "AVE"
    for i in range(out_h):
        for j in range(out_w):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            size = (h1 - h0) * (w1 - w0)  # Caffe's average counts the padding, but not past it
            window = x[:, :, max(h0, 0) : min(h1, h), max(w0, 0) : min(w1, w)]
            out[:, :, i, j] = window.sum(axis=(2, 3)) / size if average else window.max(axis=(2, 3))
    return out


def _pooled(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe rounds pooled sizes up, then drops a last window that would start inside the
    padding."""
    pooled = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


def inner_product(bottoms, blobs, params) -> np.ndarray:
    p = params.get("inner_product_param", {})
    x = bottoms[0].reshape(bottoms[0].shape[0], -1).astype(np.float64)
    weight = (
        blobs[0].reshape(int(p.get("num_output", blobs[0].shape[0])), -1)
        if not p.get("transpose")
        else blobs[0].T
    )
    out = x @ weight.astype(np.float64).T
    if p.get("bias_term", True) and len(blobs) > 1:
        out += blobs[1].reshape(1, -1)
    return out


def batch_norm(bottoms, blobs, params) -> np.ndarray:
    eps = float(params.get("batch_norm_param", {}).get("eps", 1e-5))
    factor = float(blobs[2].ravel()[0]) if len(blobs) > 2 else 1.0
    scale = 0.0 if factor == 0 else 1.0 / factor
    mean, var = blobs[0].ravel() * scale, blobs[1].ravel() * scale
    shape = (1, -1) + (1,) * (bottoms[0].ndim - 2)
    return (bottoms[0] - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)


def scale(bottoms, blobs, params) -> np.ndarray:
    shape = (1, -1) + (1,) * (bottoms[0].ndim - 2)
    out = bottoms[0] * blobs[0].reshape(shape)
    if params.get("scale_param", {}).get("bias_term") and len(blobs) > 1:
        out = out + blobs[1].reshape(shape)
    return out


def relu(bottoms, blobs, params) -> np.ndarray:
    slope = float(params.get("relu_param", {}).get("negative_slope", 0.0))
    return np.where(bottoms[0] > 0, bottoms[0], bottoms[0] * slope)


def softmax(bottoms, blobs, params) -> np.ndarray:
    axis = int(params.get("softmax_param", {}).get("axis", 1))
    shifted = np.exp(bottoms[0] - bottoms[0].max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def eltwise(bottoms, blobs, params) -> np.ndarray:
    p = params.get("eltwise_param", {})
    operation = p.get("operation", "SUM")
    if operation == "PROD":
        return np.prod(np.stack(bottoms), axis=0)
    if operation == "MAX":
        return np.max(np.stack(bottoms), axis=0)
    coefficients = p.get("coeff") or [1.0] * len(bottoms)
    return sum(float(k) * b for k, b in zip(coefficients, bottoms))


def concat(bottoms, blobs, params) -> np.ndarray:
    p = params.get("concat_param", {})
    return np.concatenate(bottoms, axis=int(p.get("axis", p.get("concat_dim", 1))))


LAYERS: dict[str, Layer] = {
    "Convolution": convolution,
    "Pooling": pooling,
    "InnerProduct": inner_product,
    "BatchNorm": batch_norm,
    "Scale": scale,
    "ReLU": relu,
    "Softmax": softmax,
    "Eltwise": eltwise,
    "Concat": concat,
    "Sigmoid": lambda b, _, __: 1 / (1 + np.exp(-b[0])),
    "Dropout": lambda b, _, __: b[0],  # identity at inference: Caffe scales during training
}
"""The layer types the check recomputes; others are listed as not checked."""
