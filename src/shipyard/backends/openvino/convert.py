"""ONNX → OpenVINO IR (``.xml`` graph + ``.bin`` weights)."""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import ConversionError
from shipyard.records import Artifact


def convert_to_openvino(onnx: Artifact, path: Path, compress_to_fp16: bool = False) -> Artifact:
    """Convert an ONNX artifact to IR at ``path`` (``.xml``); FP32 weights unless asked for FP16."""
    import openvino as ov

    try:
        model = ov.convert_model(str(onnx.path))
        ov.save_model(model, str(path), compress_to_fp16=compress_to_fp16)
    except Exception as exc:
        raise ConversionError(
            f"OpenVINO conversion failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return Artifact(path, "openvino", onnx.signature)
