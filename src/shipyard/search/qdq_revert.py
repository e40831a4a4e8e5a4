"""Put layers of a QDQ ONNX model back in float without quantising it again.

A layer (Conv, MatMul, Gemm…) is quantised in QDQ form when its inputs come through
DequantizeLinear. Reverting it rewires each such input: an activation to the float tensor its
QuantizeLinear took, a weight or bias to the float model's own values where they are given (ONNX
Runtime names a quantised initializer ``{name}_quantized``), else to its dequantised values — with
7-bit weights (no VNNI) those alone kept MobileNetV2 8 points below float with every layer
"reverted". Nothing else moves, so the other layers keep exactly the ranges they were calibrated
with — a probe of "what does this layer cost" is one graph edit and one evaluation, not a new
calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

QUANTIZABLE = {"Conv", "ConvTranspose", "MatMul", "Gemm"}


@dataclass(frozen=True)
class QdqLayer:
    name: str
    op_type: str


def quantized_layers(model: Any) -> list[QdqLayer]:
    """The quantised layers of a QDQ model, in graph (topological) order."""
    producers = {o: n for n in model.graph.node for o in n.output}
    return [
        QdqLayer(n.name, n.op_type)
        for n in model.graph.node
        if n.op_type in QUANTIZABLE
        and any(getattr(producers.get(i), "op_type", "") == "DequantizeLinear" for i in n.input)
    ]


def float_initializers(model: Any) -> dict[str, np.ndarray]:
    """The float initializers of the model that was quantised, by name."""
    from onnx import TensorProto, numpy_helper

    return {
        i.name: numpy_helper.to_array(i)
        for i in model.graph.initializer
        if i.data_type == TensorProto.FLOAT
    }


def revert(model: Any, names: set[str], floats: dict[str, np.ndarray] | None = None) -> Any:
    """A copy of the QDQ ``model`` with the layers ``names`` computing in float (weights from
    ``floats`` where it has them)."""
    import onnx

    reverted = onnx.ModelProto()
    reverted.CopyFrom(model)
    graph = reverted.graph
    producers = {o: n for n in graph.node for o in n.output}
    initializers = {i.name: i for i in graph.initializer}
    made: dict[str, str] = {}
    for node in graph.node:
        if node.name not in names:
            continue
        for index, tensor in enumerate(node.input):
            dq = producers.get(tensor)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            source = dq.input[0]
            if source in initializers:
                node.input[index] = made.get(tensor) or _float_initializer(
                    graph, dq, initializers, made, tensor, floats or {}
                )
            else:
                q = producers.get(source)
                if q is not None and q.op_type == "QuantizeLinear":
                    node.input[index] = made.get(source) or _clipped(
                        graph, q, initializers, made, source
                    )
    _drop_unused(graph)
    return _sorted(reverted)


def _float_initializer(
    graph: Any,
    dq: Any,
    initializers: dict,
    made: dict[str, str],
    tensor: str,
    floats: dict[str, np.ndarray],
) -> str:
    """The float values of a quantised weight or bias: the float model's own where they are the
    same tensor (within half a quantisation step of the dequantised values), else dequantised."""
    from onnx import numpy_helper

    name = f"{tensor}__float"
    made[tensor] = name
    values, scale = _dequantized(dq, initializers)
    original = floats.get(dq.input[0].removesuffix("_quantized"))
    if (
        original is not None
        and original.shape == values.shape
        and np.all(np.abs(original - values) <= scale * 0.501 + 1e-6)
    ):
        values = original
    graph.initializer.append(numpy_helper.from_array(values.astype(np.float32), name))
    return name


def _dequantized(dq: Any, initializers: dict) -> tuple[np.ndarray, np.ndarray]:
    """What a DequantizeLinear of an initializer computes, and its scale (broadcastable)."""
    from onnx import numpy_helper

    values = numpy_helper.to_array(initializers[dq.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(initializers[dq.input[1]]).astype(np.float32)
    zero = (
        numpy_helper.to_array(initializers[dq.input[2]]).astype(np.float32)
        if len(dq.input) > 2 and dq.input[2] in initializers
        else np.zeros_like(scale)
    )
    if scale.ndim == 1 and values.ndim > 1:
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % values.ndim
        shape = [1] * values.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (values - zero) * scale, scale


def _clipped(graph: Any, q: Any, initializers: dict, made: dict[str, str], quantized: str) -> str:
    """The float tensor a QuantizeLinear took, clipped to the range it can represent.

    ONNX Runtime's quantiser folds a Relu/Clip into the following QuantizeLinear's range, so the
    tensor before it is the *unclipped* one: the clip keeps the activation function.
    """
    from onnx import helper, numpy_helper

    scale = float(numpy_helper.to_array(initializers[q.input[1]]).reshape(-1)[0])
    zero_init = initializers.get(q.input[2]) if len(q.input) > 2 else None
    zero = numpy_helper.to_array(zero_init) if zero_init is not None else np.zeros((), np.uint8)
    info = np.iinfo(zero.dtype)
    low, high = (
        (info.min - float(zero.reshape(-1)[0])) * scale,
        (info.max - float(zero.reshape(-1)[0])) * scale,
    )
    name = f"{quantized}__float"
    bounds = [f"{name}_min", f"{name}_max"]
    for bound, value in zip(bounds, (low, high)):
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), bound))
    graph.node.append(helper.make_node("Clip", [q.input[0], *bounds], [name], name=f"{name}_clip"))
    made[quantized] = name
    return name


def _sorted(model: Any) -> Any:
    """Nodes in topological order again (the clips were appended at the end)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        progressed = [n for n in pending if all(i in ready for i in n.input)]
        if not progressed:
            ordered += pending  # not a DAG we understand: leave the rest as it was
            break
        for node in progressed:
            ordered.append(node)
            ready.update(node.output)
        pending = [n for n in pending if n not in progressed]
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)
    return model


def _drop_unused(graph: Any) -> None:
    """Remove Q/DQ nodes (and initializers) nothing reads any more."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [
            n
            for n in graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")
            and not any(o in used for o in n.output)
        ]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)
