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
) -> Artifact:
    """NNCF INT8 of an ONNX model at ``path`` as U8S8 QDQ; ``keep_fp32`` are ONNX node names left
    in float."""
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
            advanced_parameters=_per_tensor_activations(),
        )
    except Exception as exc:
        raise ConversionError(
            f"NNCF quantisation of the ONNX model failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    unsigned_activations(quantized)
    _save(quantized, path)
    return Artifact(path, "onnx", onnx_artifact.signature)


def _per_tensor_activations():
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        QuantizationParameters,
    )

    return AdvancedQuantizationParameters(
        activations_quantization_params=QuantizationParameters(per_channel=False)
    )


def _ignored(model, names: list[str]):
    import nncf

    present = {node.name for node in model.graph.node}
    kept = [n for n in names if n in present]
    return nncf.IgnoredScope(names=kept, validate=False) if kept else None


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


def _save(model, path: Path) -> None:
    import onnx

    if model.ByteSize() > MAX_PROTO_BYTES:
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save(model, str(path))
