"""The ``quantize`` recipe step: ``quantize(method=…, …)`` after an ONNX export or OpenVINO conversion.

    static-qdq     ONNX Runtime static INT8, QDQ format; ``calibration`` minmax|entropy|percentile
    dynamic        ONNX Runtime dynamic INT8 (weights ahead of time, activations per call)
    fp16           ONNX FP16 with FP32 inputs and outputs
    nncf           OpenVINO NNCF post-training INT8 (``transformer=True`` for transformer models)
    nncf-weights   OpenVINO NNCF INT8 weight-only compression
    nncf-accuracy-control  OpenVINO NNCF INT8 reverting layers to FP32 until the build's ``metric``
                   drops at most ``max_drop`` points on held-out calibration samples
    ncnn-int8      ncnn INT8 weights and input scales; ``calibration`` minmax|entropy

``keep_fp32`` lists ONNX node (or ncnn layer) names left in FP32 (mixed precision). Every artifact is cached by
source content hash, recipe and calibration data (``shipyard.quantize.cache``).
"""

from __future__ import annotations

from shipyard.build.artifacts import Workshop, step
from shipyard.errors import ConversionError
from shipyard.records import Artifact

METHODS = ("static-qdq", "dynamic", "fp16", "nncf", "nncf-weights", "nncf-accuracy-control", "ncnn-int8")
SUFFIX = {"onnx": ".onnx", "openvino": ".xml", "ncnn": ".param"}


@step("quantize")
def quantize(workshop: Workshop, previous: Artifact | None, method: str, **options) -> Artifact:
    if method not in METHODS:
        raise ConversionError(f"unknown quantisation method {method!r}; expected one of {', '.join(METHODS)}")
    if previous is None:
        raise ConversionError("quantize needs an exported model before it; the recipe gave it nothing")
    want = input_format(method)
    if previous.format != want:
        raise ConversionError(f"quantize(method={method}) needs a {want} artifact; the recipe gave it {previous.format}")
    from shipyard.quantize.cache import cache_key, cached

    key = cache_key(workshop.source.content_hash, workshop.current_key, _data_hash(workshop, method))
    return cached(key, workshop.new_path(SUFFIX[want]), lambda path: _make(workshop, previous, path, method, options))


def input_format(method: str) -> str:
    """The artifact format a quantisation method starts from."""
    if method.startswith("nncf"):
        return "openvino"
    return "ncnn" if method == "ncnn-int8" else "onnx"


def _make(workshop: Workshop, previous: Artifact, path, method: str, options: dict) -> Artifact:
    keep = list(options.get("keep_fp32", []))
    if method == "static-qdq":
        from shipyard.quantize.ort_int8 import quantize_static_qdq

        return quantize_static_qdq(previous, path, _calibration(workshop), options.get("calibration", "minmax"),
                                   bool(options.get("per_channel", True)), keep)
    if method == "dynamic":
        from shipyard.quantize.ort_int8 import quantize_dynamic_int8

        return quantize_dynamic_int8(previous, path, bool(options.get("per_channel", True)), keep)
    if method == "fp16":
        from shipyard.quantize.fp16 import convert_fp16

        return convert_fp16(previous, path)
    if method == "ncnn-int8":
        from shipyard.quantize.ncnn_int8 import quantize_ncnn_int8

        return quantize_ncnn_int8(previous, path, _calibration(workshop), options.get("calibration", "entropy"), keep)
    if method == "nncf-accuracy-control":
        from shipyard.quantize.accuracy_control import quantize_accuracy_control

        return quantize_accuracy_control(previous, path, _calibration(workshop), options.get("metric", "agreement"),
                                         float(options.get("max_drop", 1.0)))
    from shipyard.quantize.openvino_int8 import quantize_nncf

    return quantize_nncf(previous, path, None if method == "nncf-weights" else _calibration(workshop), bool(options.get("transformer", False)), keep,
                         weights_only=method == "nncf-weights")


def _calibration(workshop: Workshop):
    data = workshop.calibration
    if data is None or len(data) == 0:
        raise ConversionError("static INT8 quantisation needs calibration data; pass --data")
    workshop.notes["calibration"] = [n for n in data.notes if n.startswith("calibration:")]
    return data


def _data_hash(workshop: Workshop, method: str) -> str:
    if method in ("dynamic", "fp16", "nncf-weights") or workshop.calibration is None:
        return "-"
    from shipyard.verify.reference import dataset_hash

    return dataset_hash(workshop.calibration)
