"""FP16 ONNX with FP32 inputs and outputs, so clients and the signature do not change."""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import ConversionError
from shipyard.records import Artifact


def convert_fp16(onnx: Artifact, path: Path) -> Artifact:
    """Weights and arithmetic in FP16, FP32 at the edges (ONNX Runtime's float16 converter)."""
    import onnx as onnx_lib
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = convert_float_to_float16(onnx_lib.load(str(onnx.path)), keep_io_types=True)
        onnx_lib.save(model, str(path))
    except Exception as exc:
        raise ConversionError(
            f"FP16 conversion failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return Artifact(path, "onnx", onnx.signature)
