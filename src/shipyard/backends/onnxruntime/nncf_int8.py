"""INT8 for ONNX Runtime made by NNCF: NNCF's quantisation of the ONNX model, in the QDQ form
ONNX Runtime's x86 kernels are fastest at.

Why NNCF and not only ``quantize_static``: on a real pretrained CNN (MobileNetV2) NNCF's recipe —
activation ranges from the *mean* of per-sample minima and maxima, fast bias correction, and
quantisers only where an integer kernel consumes them — keeps far more of the model's answers
than ONNX Runtime's MinMax/Entropy/Percentile calibration (measured in ``docs/benchmarks.md``).

Two changes make NNCF's output run as fast on ONNX Runtime as its own quantiser's:

* activations are quantised per tensor (NNCF's CPU default quantises depthwise-convolution inputs
  per channel, which ``QLinearConv`` cannot take, so those convolutions stayed in float);
* symmetric signed activations become unsigned with zero point + 128 — the same grid of values,
  so the numbers do not change — because ONNX Runtime fuses a Conv or Add into an integer kernel
  only when its input and output share a type, and U8S8 is its fast x86 path. NNCF makes ReLU
  outputs unsigned and residual branches signed, which left every projection Conv and Add in float.

Embedding tables (weights read by ``Gather``) stay in float: ONNX Runtime fuses no
``DequantizeLinear`` into a ``Gather``, so an INT8 table is dequantised whole on every call — on
MiniLM the 30522 × 384 word table made the INT8 model slower than FP32. Likewise an INT8 weight
whose layer reads a float activation (MobileNetV2's classifier Gemm: NNCF leaves its input
unquantised) is stored dequantised, so it is not dequantised again on every call. For transformers
(``transformer=True``) NNCF applies SmoothQuant to the MatMuls; ``smooth_quant`` sets its alpha
(NNCF's default 0.95 when ``None``; a negative alpha turns it off).
"""

from __future__ import annotations

from pathlib import Path

from shipyard.dataset import Dataset
from shipyard.errors import ConversionError
from shipyard.records import Artifact

MAX_PROTO_BYTES = 1_800_000_000
"""Above this an ONNX protobuf cannot be serialised in one piece: weights go to external data."""


def quantize_nncf_qdq(
    onnx_artifact: Artifact,
    path: Path,
    calibration: Dataset,
    transformer: bool = False,
    keep_fp32: list[str] | None = None,
    smooth_quant: float | None = None,
) -> Artifact:
    """NNCF INT8 of an ONNX model at ``path`` as U8S8 QDQ; ``keep_fp32`` are ONNX node names left
    in float, ``smooth_quant`` the SmoothQuant alpha for MatMuls (transformers only)."""
    import logging

    import nncf
    import onnx

    if calibration is None or len(calibration) == 0:
        raise ConversionError("NNCF quantisation needs calibration data; pass --data")
    from shipyard.quantize.calibration import feeds

    nncf.set_log_level(logging.WARNING)
    model = onnx.load(str(onnx_artifact.path))
    samples = list(feeds(calibration, batch=1))
    try:
        quantized = nncf.quantize(
            model,
            nncf.Dataset(samples),
            subset_size=len(samples),
            ignored_scope=_ignored(model, keep_fp32 or []),
            model_type=nncf.ModelType.TRANSFORMER if transformer else None,
            advanced_parameters=_advanced(smooth_quant),
        )
    except Exception as exc:
        raise ConversionError(
            f"NNCF quantisation of the ONNX model failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    unsigned_activations(quantized)
    float_weights_for_float_layers(quantized)
    _save(quantized, path)
    return Artifact(path, "onnx", onnx_artifact.signature)


def _advanced(smooth_quant: float | None):
    """Per-tensor activations; SmoothQuant's MatMul alpha when one is given."""
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        QuantizationParameters,
    )

    extra = {}
    if smooth_quant is not None:
        extra["smooth_quant_alphas"] = AdvancedSmoothQuantParameters(matmul=float(smooth_quant))
    return AdvancedQuantizationParameters(
        activations_quantization_params=QuantizationParameters(per_channel=False), **extra
    )


def _ignored(model, names: list[str]):
    import nncf

    present = {node.name for node in model.graph.node}
    kept = [n for n in names if n in present]
    return nncf.IgnoredScope(names=kept, types=["Gather"], validate=False)


def unsigned_activations(model) -> int:
    """Turn every INT8 activation Q/DQ pair into UINT8 with zero point + 128 (the same values).

    Weights (a DequantizeLinear of an initializer) stay INT8. Returns how many zero points changed.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    changed, retyped = set(), set()
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers:
            continue
        zero = initializers.get(node.input[2])
        if zero is None or zero.data_type != onnx.TensorProto.INT8:
            continue
        if zero.name not in changed:  # a zero point shared by a Q and its DQ is shifted once
            shifted = numpy_helper.to_array(zero).astype(np.int16) + 128
            zero.CopyFrom(numpy_helper.from_array(shifted.astype(np.uint8), zero.name))
            changed.add(zero.name)
        if node.op_type == "QuantizeLinear":
            retyped.update(node.output)
    kept = [
        v for v in graph.value_info if v.name not in retyped
    ]  # stale INT8 types would fail to load
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return len(changed)


def float_weights_for_float_layers(model) -> list[str]:
    """Store dequantised the INT8 weights of layers whose activation input is not quantised.

    ONNX Runtime fuses a weight's ``DequantizeLinear`` only into an integer kernel, which needs a
    quantised activation too; otherwise it dequantises the weight on every call. The values stay
    exactly what NNCF chose (its INT8 grid), so the model's outputs do not change. Returns the
    layers changed.
    """
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    changed, dropped = [], set()
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        activation, weight = producer.get(node.input[0]), producer.get(node.input[1])
        if activation is not None and activation.op_type == "DequantizeLinear":
            continue
        if (
            weight is None
            or weight.op_type != "DequantizeLinear"
            or len(consumers[weight.output[0]]) > 1
        ):
            continue
        if not all(name in initializers for name in weight.input):
            continue
        values, scale, zero = (numpy_helper.to_array(initializers[n]) for n in weight.input[:3])
        axis = next((a.i for a in weight.attribute if a.name == "axis"), 1)
        shape = [1] * values.ndim
        if scale.ndim:
            shape[axis] = -1
        real = (values.astype(np.float32) - zero.astype(np.float32).reshape(shape)) * scale.reshape(
            shape
        )
        name = weight.output[0] + "_float"
        graph.initializer.append(numpy_helper.from_array(real.astype(np.float32), name))
        node.input[1] = name
        dropped.add(id(weight))
        changed.append(node.name)
    kept = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for n in graph.node for name in n.input}
    unused = [i for i in graph.initializer if i.name not in used]
    for initializer in unused:
        graph.initializer.remove(initializer)
    return changed


def _save(model, path: Path) -> None:
    import onnx

    if model.ByteSize() > MAX_PROTO_BYTES:
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save(model, str(path))
