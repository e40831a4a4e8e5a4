"""FLOPs of one ONNX Runtime node from its input and output shapes (multiply-add = 2 FLOPs)."""

from __future__ import annotations

import math

CONV = ("Conv", "FusedConv", "ConvTranspose", "QLinearConv", "ConvInteger")
MATMUL = ("MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "MatMulNBits")
FREE = (
    "Reshape",
    "Transpose",
    "Shape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Gather",
    "Slice",
    "Concat",
    "Identity",
    "Cast",
    "Constant",
    "Expand",
    "Split",
)
"""Data movement: no arithmetic."""


def node_flops(op_type: str, inputs: list[list[int]], outputs: list[list[int]]) -> float:
    out = math.prod(outputs[0]) if outputs and outputs[0] else 0
    if op_type in CONV and len(inputs) >= 2 and len(inputs[1]) >= 3:
        weight = inputs[1]
        if op_type == "ConvTranspose":
            return 2.0 * math.prod(inputs[0]) * weight[1] * math.prod(weight[2:])
        return 2.0 * out * weight[1] * math.prod(weight[2:])
    if op_type in MATMUL and inputs and inputs[0]:  # constant weights may be left out of the shapes
        return 2.0 * out * inputs[0][-1]
    if op_type == "Gemm" and inputs and outputs and outputs[0]:
        rows = outputs[0][0]
        return 2.0 * out * (math.prod(inputs[0]) / rows if rows else 0)
    if op_type in FREE:
        return 0.0
    if op_type in ("Softmax", "LayerNormalization", "SkipLayerNormalization", "BatchNormalization"):
        return 5.0 * out
    return float(out)
