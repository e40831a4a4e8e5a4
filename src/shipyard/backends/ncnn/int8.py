"""INT8 for ncnn: calibrate on the user's data, then store INT8 weights with their scales.

This does in Python what ncnn's ``ncnn2table`` + ``ncnn2int8`` tools do (the ncnn wheel ships
neither): the FP32 graph runs on the calibration samples in ncnn itself, the input of every
Convolution, ConvolutionDepthWise and InnerProduct layer is measured, and its scale
(127 / threshold) is chosen by ``minmax`` (the largest magnitude) or ``entropy`` (the threshold
whose 128-level quantisation of the 2048-bin histogram loses least information, as ncnn2table's
default KL method, kept only when it quantises the measured values with less squared error than
the full range does). Weights are symmetric INT8 per output channel (per group for depthwise
layers). ncnn then runs those layers in INT8 and the rest in FP32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shipyard.backends.ncnn.format import (
    FP16_TAG,
    INT8_TAG,
    Blob,
    Graph,
    Layer,
    read_graph,
    split_weights,
)
from shipyard.dataset import Dataset
from shipyard.errors import ConversionError
from shipyard.records import Artifact

CALIBRATIONS = ("minmax", "entropy")
INT8_SCALE_TERM = {"Convolution": 2, "ConvolutionDepthWise": 1, "InnerProduct": 2}
"""Quantisable layer type → the ``8=`` parameter ncnn expects for per-channel (per-group) weight
scales."""
HISTOGRAM_BINS = 2048
LEVELS = 128


@dataclass(frozen=True)
class Target:
    """A layer to quantise: its index in the graph and the blob it reads."""

    index: int
    layer: Layer

    @property
    def input_blob(self) -> str:
        return self.layer.bottoms[0]


def quantize_ncnn_int8(
    ncnn: Artifact,
    path: Path,
    calibration: Dataset,
    method: str = "entropy",
    keep_fp32: list[str] | None = None,
) -> Artifact:
    """INT8 copy of the ncnn model ``ncnn`` at ``path`` (``.param``, ``.bin`` beside it)."""
    if method not in CALIBRATIONS:
        raise ConversionError(
            f"unknown ncnn calibration {method!r}; expected one of {', '.join(CALIBRATIONS)}"
        )
    graph = read_graph(ncnn.path)
    blobs = split_weights(graph, ncnn.path.with_suffix(".bin").read_bytes())
    targets = [
        Target(i, layer)
        for i, layer in enumerate(graph.layers)
        if layer.type in INT8_SCALE_TERM
        and len(layer.bottoms) == 1
        and layer.name not in (keep_fp32 or [])
    ]
    if not targets:
        raise ConversionError(
            "the ncnn graph has no Convolution or InnerProduct layer to quantise "
            f"(layer types: {', '.join(sorted({l.type for l in graph.layers}))})"
        )
    thresholds = activation_thresholds(
        ncnn, calibration, sorted({t.input_blob for t in targets}), method
    )
    for target in targets:
        blobs[target.index] = quantized_blobs(
            target.layer, blobs[target.index], 127 / thresholds[target.input_blob]
        )
        target.layer.params[8] = str(INT8_SCALE_TERM[target.layer.type])
    fuse_requantize(graph, blobs, {t.layer.name for t in targets}, thresholds)
    _write(graph, blobs, path)
    return Artifact(path, "ncnn", ncnn.signature)


def fuse_requantize(
    graph: Graph, blobs: list[list[Blob]], quantized: set[str], thresholds: dict[str, float]
) -> None:
    """Let an INT8 convolution whose output only feeds INT8 convolutions hand them INT8 directly.

    As ncnn2int8 does: the producer gets the consumers' input scale as its output scale (``8=`` +
    100),
    so ncnn requantises once instead of dequantising to FP32 and quantising again.
    """
    readers: dict[str, list[Layer]] = {}
    for layer in graph.layers:
        for bottom in layer.bottoms:
            readers.setdefault(bottom, []).append(layer)
    convolutions = {"Convolution", "ConvolutionDepthWise"}

    def int8_convolutions(blob: str) -> list[Layer]:
        found = readers.get(blob, [])
        if len(found) == 1 and found[0].type == "Split":
            found = [reader for top in found[0].tops for reader in readers.get(top, [])]
        ok = found and all(
            r.type in convolutions and r.name in quantized and len(r.bottoms) == 1 for r in found
        )
        return found if ok else []

    for index, layer in enumerate(graph.layers):
        if layer.type not in convolutions or layer.name not in quantized:
            continue
        consumers = int8_convolutions(layer.tops[0])
        if consumers:
            scale = 127 / thresholds[consumers[0].bottoms[0]]
            layer.params[8] = str(int(layer.params[8]) + 100)
            blobs[index] = [*blobs[index], Blob(np.float32([scale]).tobytes())]


def int8_outputs(param: Path) -> dict[str, float]:
    """Blobs that layers hand on in INT8 (requantised), with the scale that turns them back into
    values."""
    graph = read_graph(param)
    blobs = split_weights(graph, param.with_suffix(".bin").read_bytes())
    return {
        layer.tops[0]: float(np.frombuffer(weights[-1].data, np.float32)[0])
        for layer, weights in zip(graph.layers, blobs)
        if layer.int_param(8) > 100
    }


def _write(graph: Graph, blobs: list[list[Blob]], path: Path) -> None:
    path.write_text(graph.to_text())
    path.with_suffix(".bin").write_bytes(b"".join(blob.data for layer in blobs for blob in layer))


def quantized_blobs(layer: Layer, blobs: list[Blob], input_scale: float) -> list[Blob]:
    """The layer's weight blob in INT8, its bias as it was, then the weight and input scales ncnn
    reads."""
    rows = layer.int_param(7, 1) if layer.type == "ConvolutionDepthWise" else layer.int_param(0)
    weights = float_values(blobs[0]).reshape(rows, -1)
    absmax = np.abs(weights).max(axis=1)
    scales = (127 / np.where(absmax > 0, absmax, 127)).astype(
        np.float32
    )  # an all-zero row keeps scale 1
    scaled = weights * scales[:, None]
    quantized = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), -127, 127).astype(np.int8)
    weight = Blob(_padded(INT8_TAG.to_bytes(4, "little") + quantized.tobytes()))
    raw = [Blob(scales.tobytes()), Blob(np.float32([input_scale]).tobytes())]
    return [weight, *blobs[1:], *raw]


def float_values(blob: Blob) -> np.ndarray:
    """A tagged weight blob's values as float32 (padding dropped)."""
    tag = int.from_bytes(blob.data[:4], "little")
    body = blob.data[4:]
    if tag == 0:
        return np.frombuffer(body, np.float32).copy()
    if tag == FP16_TAG:
        return np.frombuffer(body[: len(body) // 2 * 2], np.float16).astype(np.float32)
    raise ConversionError(
        f"a weight blob is stored with tag {tag:#x}; expected float32 or float16 weights"
    )


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def activation_thresholds(
    ncnn: Artifact, calibration: Dataset, blobs: list[str], method: str
) -> dict[str, float]:
    """The clipping threshold of each blob over the calibration samples (two passes for
    ``entropy``)."""
    from shipyard.backends.ncnn.session import NcnnSession

    if len(calibration) == 0:
        raise ConversionError("ncnn INT8 needs calibration samples; pass --data")
    session = NcnnSession(ncnn, threads=1)
    samples = [
        {name: array[i] for name, array in calibration.inputs.items()}
        for i in range(len(calibration))
    ]
    absmax = {blob: 0.0 for blob in blobs}
    for sample in samples:
        for blob, value in session.extract(sample, blobs).items():
            absmax[blob] = max(absmax[blob], float(np.abs(value).max(initial=0.0)))
    absmax = {blob: value or 1.0 for blob, value in absmax.items()}
    if method == "minmax":
        return absmax
    histograms = {blob: np.zeros(HISTOGRAM_BINS, np.int64) for blob in blobs}
    for sample in samples:
        for blob, value in session.extract(sample, blobs).items():
            magnitudes = np.abs(value[value != 0])
            histograms[blob] += np.histogram(magnitudes, HISTOGRAM_BINS, (0, absmax[blob]))[0]
    return {blob: safer_threshold(histograms[blob], absmax[blob]) for blob in blobs}


def safer_threshold(histogram: np.ndarray, absmax: float) -> float:
    """The KL threshold, unless quantising at the full range loses less (KL misjudges spiky
    histograms,
    such as an input of 17 grey levels, and would clip half the values)."""
    width = absmax / len(histogram)
    entropy = entropy_threshold(histogram, width)
    return (
        entropy
        if squared_error(histogram, width, entropy) < squared_error(histogram, width, absmax)
        else absmax
    )


def squared_error(histogram: np.ndarray, bin_width: float, threshold: float) -> float:
    """Total squared error of quantising the histogram's values (bin centres) to ±127 steps of
    ``threshold``."""
    centres = (np.arange(len(histogram)) + 0.5) * bin_width
    step = threshold / 127
    restored = np.minimum(np.floor(centres / step + 0.5), 127) * step
    return float(np.sum(histogram * (centres - restored) ** 2))


def entropy_threshold(histogram: np.ndarray, bin_width: float) -> float:
    """The threshold whose ``LEVELS``-level quantisation keeps the histogram closest in KL
    divergence."""
    best_bins, best_divergence = len(histogram), np.inf
    for bins in range(LEVELS, len(histogram) + 1):
        divergence = _divergence(histogram, bins)
        if divergence < best_divergence:
            best_bins, best_divergence = bins, divergence
    return (best_bins + 0.5) * bin_width


def _divergence(histogram: np.ndarray, bins: int) -> float:
    kept = histogram[:bins].astype(np.float64)
    reference = kept.copy()
    reference[-1] += histogram[bins:].sum()  # everything past the threshold clips to it
    if reference.sum() == 0:
        return np.inf
    edges = np.linspace(0, bins, LEVELS + 1).astype(int)[:-1]
    nonzero = reference > 0
    totals = np.add.reduceat(kept, edges)
    counts = np.add.reduceat(nonzero.astype(np.float64), edges)
    per_bin = np.repeat(
        np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0),
        np.diff([*edges, bins]),
    )
    expanded = np.where(nonzero, per_bin, 0.0)
    p = reference / reference.sum()
    q = expanded / max(expanded.sum(), 1e-12)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
