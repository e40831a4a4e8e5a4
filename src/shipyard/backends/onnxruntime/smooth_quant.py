"""SmoothQuant INT8 for transformers on ONNX Runtime: NNCF's static QDQ of the ONNX model, the
MatMul alpha chosen on calibration samples held out from the fit (never on the evaluation set).

SmoothQuant moves activation outliers into the weights (``x · W = (x / s) · (s · W)``, ``s =
max|x|^α / max|W|^(1-α)`` per input channel) so per-tensor INT8 activations lose less. The best α
depends on the model and data: on all-MiniLM-L6-v2 α 0.75 kept more cosine than NNCF's default
0.95 and than 0.5 (numbers in docs/benchmarks.md), so a few alphas are tried and the one whose
model agrees best with the FP32 model on the held-out samples is kept.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shipyard.dataset import Dataset
from shipyard.records import Artifact

ALPHAS = (0.5, 0.75, 0.95)
MIN_HELD_OUT = 4
"""Fewer held-out samples than this cannot rank alphas: NNCF's default is used instead."""


@dataclass
class AlphaChoice:
    """The alpha kept and what each alpha scored (mean cosine × 100 on ``held_out`` samples)."""

    alpha: float
    scores: dict[float, float] = field(default_factory=dict)
    held_out: int = 0

    def note(self) -> str:
        if not self.scores:
            return f"SmoothQuant alpha {self.alpha} (too few calibration samples to choose one)"
        tried = ", ".join(f"{a}: {s:.2f}" for a, s in self.scores.items())
        return (
            f"SmoothQuant alpha {self.alpha} chosen on {self.held_out} held-out calibration "
            f"samples (cosine × 100 — {tried})"
        )


def quantize_smooth_quant(
    onnx: Artifact,
    path: Path,
    calibration: Dataset,
    alphas: tuple[float, ...] = ALPHAS,
    keep_fp32: list[str] | None = None,
) -> tuple[Artifact, AlphaChoice]:
    """The NNCF SmoothQuant INT8 model at ``path`` for the best of ``alphas``, and the choice.

    Each alpha is fitted on three quarters of ``calibration`` and scored on the other quarter; the
    kept model is the one scored (ties go to the alpha listed first).
    """
    import onnx as onnx_lib

    from shipyard.backends.onnxruntime.nncf_int8 import _save, quantize_nncf_qdq
    from shipyard.quantize.calibration import held_out, mean_cosine

    fit, held = held_out(calibration)
    if len(alphas) == 1 or len(held) < MIN_HELD_OUT:
        alpha = alphas[-1]
        return quantize_nncf_qdq(onnx, path, calibration, True, keep_fp32, alpha), AlphaChoice(
            alpha
        )
    reference = _outputs(onnx.path, held)
    scores: dict[float, float] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-sq-", dir=path.parent) as scratch:
        trials = {a: Path(scratch) / f"alpha-{a}.onnx" for a in alphas}
        for alpha, trial in trials.items():
            quantize_nncf_qdq(onnx, trial, fit, True, keep_fp32, alpha)
            scores[alpha] = mean_cosine(reference, _outputs(trial, held))
        best = max(alphas, key=lambda a: scores[a])
        _save(onnx_lib.load(str(trials[best])), path)
    return Artifact(path, "onnx", onnx.signature), AlphaChoice(best, scores, len(held))


def _outputs(model: Path, dataset: Dataset) -> list[np.ndarray]:
    """Every output of ``model`` for each sample, flattened into one vector per sample."""
    import onnxruntime as ort

    from shipyard.quantize.calibration import feeds

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [
        np.concatenate([np.asarray(o, np.float64).ravel() for o in session.run(None, feed)])
        for feed in feeds(dataset, batch=1)
    ]
