"""INT8 on OpenVINO: NNCF post-training quantisation of the IR, or weight-only compression.

Layers kept in FP32 are given by ONNX node names (the names the layer-by-layer comparison reports);
OpenVINO's ONNX frontend keeps those names on its operations (a Conv with bias becomes
``NAME/WithoutBiases`` + ``NAME``), so they are matched by name prefix.

For transformers NNCF applies SmoothQuant to the MatMuls; its alpha is passed explicitly
(``smooth_quant``, default ``SMOOTH_QUANT_ALPHA``, NNCF's own default) so the recipe says what ran
and a new NNCF default cannot change a package silently.
"""

from __future__ import annotations

import re
from pathlib import Path

from shipyard.dataset import Dataset
from shipyard.errors import ConversionError
from shipyard.records import Artifact

METHODS = ("nncf", "nncf-weights")
SMOOTH_QUANT_ALPHA = 0.95


def quantize_nncf(
    ir: Artifact,
    path: Path,
    calibration: Dataset | None,
    transformer: bool = False,
    keep_fp32: list[str] | None = None,
    weights_only: bool = False,
    smooth_quant: float | None = None,
) -> Artifact:
    """NNCF INT8 of an OpenVINO IR at ``path``: full PTQ, or INT8 weights only (no data needed)."""
    import logging

    import nncf
    import openvino as ov

    nncf.set_log_level(logging.WARNING)
    model = ov.Core().read_model(str(ir.path))
    ignored = _ignored_scope(model, keep_fp32 or [])
    try:
        if weights_only:
            quantized = nncf.compress_weights(
                model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=ignored
            )
        else:
            if calibration is None or len(calibration) == 0:
                raise ConversionError("NNCF quantisation needs calibration data; pass --data")
            from shipyard.quantize.calibration import feeds

            samples = list(feeds(calibration, batch=1))
            quantized = nncf.quantize(
                model,
                nncf.Dataset(samples),
                subset_size=len(samples),
                ignored_scope=ignored,
                model_type=nncf.ModelType.TRANSFORMER if transformer else None,
                preset=nncf.QuantizationPreset.MIXED
                if transformer
                else nncf.QuantizationPreset.PERFORMANCE,
                advanced_parameters=_smooth_quant(smooth_quant) if transformer else None,
            )
        ov.save_model(quantized, str(path), compress_to_fp16=False)
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(
            f"NNCF quantisation failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return Artifact(path, "openvino", ir.signature)


def _smooth_quant(alpha: float | None):
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    matmul = SMOOTH_QUANT_ALPHA if alpha is None else float(alpha)
    return AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=matmul)
    )


def _ignored_scope(model, names: list[str]):
    import nncf

    if not names:
        return None
    pattern = "|".join(re.escape(n) for n in names)
    matches = [
        op.get_friendly_name()
        for op in model.get_ops()
        if re.fullmatch(f"({pattern})(/.*)?", op.get_friendly_name())
    ]
    return nncf.IgnoredScope(names=matches, validate=False)
