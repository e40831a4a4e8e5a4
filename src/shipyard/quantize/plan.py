"""FP16 and INT8 candidates for each backend, registered in ``shipyard.build.plan.PRECISION_PLANNERS``.

Convolutional and other tensor models get static INT8 (calibrated on the user's data); text
models (transformers) get dynamic INT8 on ONNX Runtime and NNCF's transformer scheme plus
weight-only INT8 on OpenVINO. Which one is fastest here is measured by the build, not assumed.
"""

from __future__ import annotations

from shipyard.build.plan import ONNX, PRECISION_PLANNERS
from shipyard.build.targets import target_precision_plans
from shipyard.records import Candidate
from shipyard.sources.base import Source

OPENVINO = ONNX.then("convert", format="openvino")


def int8_plans(source: Source, backend: str) -> list[Candidate]:
    text = source.text is not None
    if backend == "onnxruntime":
        if text:
            return [Candidate("onnxruntime", "int8", ONNX.then("quantize", method="dynamic", per_channel=True))]
        return [Candidate("onnxruntime", "int8", ONNX.then("quantize", method="static-qdq", calibration="minmax",
                                                           per_channel=True))]
    if backend == "openvino":
        plans = [Candidate("openvino", "int8", OPENVINO.then("quantize", method="nncf", transformer=text))]
        if text:
            plans.append(Candidate("openvino", "int8", OPENVINO.then("quantize", method="nncf-weights")))
        return plans
    return target_precision_plans(source, backend, "int8")


def fp16_plans(source: Source, backend: str) -> list[Candidate]:
    if backend == "onnxruntime":
        return [Candidate("onnxruntime", "fp16", ONNX.then("quantize", method="fp16"))]
    if backend == "openvino":
        return [Candidate("openvino", "fp16", ONNX.then("convert", format="openvino", compress_to_fp16=True))]
    return target_precision_plans(source, backend, "fp16")


PRECISION_PLANNERS["int8"] = int8_plans
PRECISION_PLANNERS["fp16"] = fp16_plans
