"""INT8 on ONNX Runtime: static QDQ with calibration from the user's data, and dynamic quantisation.

Weights are signed INT8 per channel and activations unsigned INT8 (U8S8), the combination ONNX
Runtime's x86 kernels are fastest at; without VNNI the weights use 7 bits (``reduce_range``) so the
AVX2 ``VPMADDUBSW`` path cannot saturate. ONNX Runtime's pre-processing (symbolic shape inference,
graph optimisation) runs in a temporary folder, so no stray files are left beside the model.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from shipyard.dataset import Dataset
from shipyard.errors import ConversionError
from shipyard.records import Artifact

CALIBRATIONS = ("minmax", "entropy", "percentile")
HISTOGRAM_SAMPLES = 64
"""Entropy and Percentile keep every activation of every calibration sample in memory before they
build histograms: 300 MobileNetV2 crops grew past 20 GB and were killed, so they see at most this
many samples (spread over the set)."""


def quantize_static_qdq(
    onnx: Artifact,
    path: Path,
    calibration: Dataset,
    method: str = "minmax",
    per_channel: bool = True,
    keep_fp32: list[str] | None = None,
    moving_average: bool = False,
) -> Artifact:
    """Static QDQ INT8 of ``onnx`` at ``path``, activation ranges from ``calibration``.

    ``moving_average`` (MinMax only) takes each activation's range as the moving average of the
    per-feed minima and maxima instead of the extremes over the whole set — closer to NNCF's mean
    of per-sample ranges, which one outlier sample cannot stretch.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if method not in CALIBRATIONS:
        raise ConversionError(
            f"unknown calibration {method!r}; expected one of {', '.join(CALIBRATIONS)}"
        )
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if method != "minmax" and len(calibration) > HISTOGRAM_SAMPLES:
        spread = np.linspace(0, len(calibration) - 1, HISTOGRAM_SAMPLES).round().astype(int)
        calibration = calibration.take(spread)
    with tempfile.TemporaryDirectory(prefix="shipyard-ortq-") as scratch:
        prepared = preprocess(onnx.path, Path(scratch))
        try:
            quantize_static(
                str(prepared),
                str(path),
                _Reader(calibration, method),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=not has_vnni(),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(keep_fp32 or []),
                calibrate_method=methods[method],
                extra_options={
                    "CalibTensorRangeSymmetric": False,
                    "CalibMaxIntermediateOutputs": 64,
                    "CalibMovingAverage": moving_average and method == "minmax",
                },
            )
        except Exception as exc:
            raise ConversionError(
                f"ONNX Runtime static quantisation failed: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
    return Artifact(path, "onnx", onnx.signature)


def quantize_dynamic_int8(
    onnx: Artifact, path: Path, per_channel: bool = True, keep_fp32: list[str] | None = None
) -> Artifact:
    """Dynamic INT8: weights quantised ahead of time, activations per call (MatMul with constant B
    only)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="shipyard-ortq-") as scratch:
        prepared = preprocess(onnx.path, Path(scratch))
        try:
            quantize_dynamic(
                str(prepared),
                str(path),
                per_channel=per_channel,
                reduce_range=not has_vnni(),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                nodes_to_exclude=list(keep_fp32 or []),
                extra_options={"MatMulConstBOnly": True},
            )
        except Exception as exc:
            raise ConversionError(
                f"ONNX Runtime dynamic quantisation failed: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
    return Artifact(path, "onnx", onnx.signature)


def preprocess(model: Path, scratch: Path) -> Path:
    """ONNX Runtime's quantisation pre-processing in ``scratch``; the model itself when it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model, target = model.resolve(), (scratch / "prepared.onnx").resolve()
    try:
        with _working_directory(scratch):  # where a failing symbolic shape inference dumps files
            quant_pre_process(str(model), str(target), skip_symbolic_shape=False, auto_merge=True)
        return target
    except Exception:  # pre-processing only helps; a model it cannot handle is quantised as it is
        try:
            quant_pre_process(str(model), str(target), skip_symbolic_shape=True)
            return target
        except Exception:
            return model


_CHDIR = threading.Lock()


@contextlib.contextmanager
def _working_directory(folder: Path):
    """Run with ``folder`` as the working directory: ONNX Runtime's symbolic shape inference
    writes ``sym_shape_infer_temp.onnx`` and its weights into the working directory when it
    fails, which would litter the user's own folder."""
    with _CHDIR:
        previous = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(previous)


def has_vnni() -> bool:
    """Full 8-bit weights only where VNNI / AMX-INT8 exists (``shipyard.quantize.auto``)."""
    from shipyard.quantize.auto import cpu_flags, int8_full_range

    return int8_full_range(cpu_flags())


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader``: one feed of up to 8 samples at a time.

    Entropy and Percentile stack every feed's activations into one array, so a smaller last feed
    crashed them (``ValueError: … inhomogeneous shape``): for those every feed has the same size.
    """

    def __init__(self, dataset: Dataset, method: str = "minmax") -> None:
        from shipyard.quantize.calibration import feeds

        batch = 8 if method == "minmax" else even_batch(len(dataset))
        self._feeds = iter(list(feeds(dataset, batch)))

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self) -> None:  # not used by quantize_static, part of the reader protocol
        pass


def even_batch(count: int, largest: int = 8) -> int:
    """The largest feed size up to ``largest`` that divides ``count`` (1 always does)."""
    return next(size for size in range(min(largest, max(count, 1)), 0, -1) if count % size == 0)
