"""Offline ONNX graph optimisation: onnxslim, or ONNX Runtime's own optimiser.

Both are build candidates, so the build measures which one is faster on the model at hand
rather than assuming. The ORT-optimised file may contain ORT-only fused operators, so it is
only ever run by ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.convert.onnx_export import check_onnx
from shipyard.errors import ConversionError
from shipyard.records import Artifact

OPTIMIZERS = ("onnxslim", "ort")


def optimize_onnx(onnx: Artifact, path: Path, optimizer: str) -> Artifact:
    if optimizer == "onnxslim":
        _onnxslim(onnx.path, path)
    elif optimizer == "ort":
        _ort_offline(onnx.path, path)
    else:
        raise ConversionError(f"unknown ONNX optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    check_onnx(path)
    return Artifact(path, "onnx", onnx.signature)


def _onnxslim(source: Path, target: Path) -> None:
    try:
        import onnxslim

        model = onnxslim.slim(str(source))
        import onnx

        onnx.save(model, str(target))
    except ImportError as exc:
        raise ConversionError("onnxslim is not installed: pip install onnxslim") from exc
    except Exception as exc:
        raise ConversionError(f"onnxslim failed: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _ort_offline(source: Path, target: Path) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(f"ONNX Runtime offline optimisation failed: {exc}") from exc
