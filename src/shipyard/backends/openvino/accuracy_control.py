"""INT8 on OpenVINO under an accuracy budget: ``nncf.quantize_with_accuracy_control``.

NNCF quantises the IR, then puts back in FP32 the operations that cost the most metric until
the drop on a validation set is at most ``max_drop``. The validation set is a held-out part of
the calibration data (the build's evaluation set stays unseen) and the metric is the build's own
(``shipyard.verify.metrics``), in the same points, so ``max_drop`` is ``--max-drop`` unchanged
(NNCF's absolute drop). The build then verifies the result on the evaluation set like any other
candidate: NNCF's validation decides what to revert, not whether the candidate passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.dataset import Dataset
from shipyard.deadline import NO_DEADLINE, Deadline
from shipyard.errors import ConversionError
from shipyard.records import Artifact, Candidate, Recipe, Step
from shipyard.verify.metrics import row_cosine, top1

METHOD = "nncf-accuracy-control"
MIN_SAMPLES = 32
"""Calibration samples needed to hold some out for validation and still calibrate on the rest."""
HOLDOUT = 0.25
MAX_VALIDATION = 100
MAX_REVERTED = 16
"""At most this many operations go back to FP32 (NNCF's ``max_num_iterations``): keeps it quick."""
Item = tuple[int, dict[str, np.ndarray]]


def fits(candidate: Candidate, calibration: Dataset | None) -> bool:
    """Whether ``candidate`` (a failed INT8 candidate) can get an accuracy-control attempt."""
    last = candidate.recipe.steps[-1] if candidate.recipe.steps else None
    return (
        candidate.backend == "openvino"
        and last is not None
        and last.options.get("method") == "nncf"
        and not last.options.get("transformer")
        and calibration is not None
        and calibration.texts is None
        and len(calibration) >= MIN_SAMPLES
    )


def attempt(candidate: Candidate, metric: str, max_drop: float) -> Candidate:
    """The accuracy-control variant of an NNCF INT8 candidate: same recipe, another quantize
    step."""
    step = Step("quantize", {"method": METHOD, "metric": metric, "max_drop": max_drop})
    recipe = Recipe(candidate.recipe.steps[:-1] + (step,))
    return Candidate(
        candidate.backend,
        "int8",
        recipe,
        name=f"{candidate.backend}/int8+{METHOD}",
        derived_from=candidate.key,
    )


def quantize_accuracy_control(
    ir: Artifact,
    path: Path,
    calibration: Dataset,
    metric: str,
    max_drop: float,
    deadline: Deadline = NO_DEADLINE,
) -> Artifact:
    """NNCF INT8 of an OpenVINO IR at ``path``, reverting layers until ``metric`` drops ≤
    ``max_drop``.

    NNCF has no time limit of its own: once ``deadline`` is spent the next validation raises, which
    ends NNCF's search, and the candidate fails saying so."""
    import logging

    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from shipyard.quantize.calibration import feeds

    nncf.set_log_level(logging.WARNING)
    core = ov.Core()
    model = core.read_model(str(ir.path))
    fit, held = split_holdout(calibration)
    if metric == "accuracy" and held.labels is None:
        metric = "agreement"
    items: list[Item] = list(enumerate(feeds(held, batch=1)))
    reference = _outputs(
        core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), items
    )  # not bf16
    samples = list(feeds(fit, batch=1))
    try:
        quantized = nncf.quantize_with_accuracy_control(
            model,
            nncf.Dataset(samples),
            nncf.Dataset(items, lambda item: item[1]),
            validation_fn(metric, reference, held.labels, deadline),
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(samples),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                max_num_iterations=MAX_REVERTED, ranking_subset_size=len(items)
            ),
        )
        ov.save_model(quantized, str(path), compress_to_fp16=False)
    except Exception as exc:
        raise ConversionError(
            f"NNCF quantisation with accuracy control failed: {type(exc).__name__}: "
            f"{str(exc)[:300]}"
        ) from exc
    return Artifact(path, "openvino", ir.signature)


def split_holdout(data: Dataset, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(calibration, validation): a seeded quarter (16 to 100 samples) held out for validation."""
    if len(data) < MIN_SAMPLES:
        raise ConversionError(
            f"quantisation with accuracy control needs at least {MIN_SAMPLES} calibration "
            f"samples to hold some out for validation; got {len(data)}"
        )
    count = min(MAX_VALIDATION, max(MIN_SAMPLES // 2, int(len(data) * HOLDOUT)))
    order = np.random.default_rng(seed).permutation(len(data))
    return data.take(np.sort(order[count:])), data.take(np.sort(order[:count]))


def validation_fn(
    metric: str, reference: np.ndarray, labels: np.ndarray | None, deadline: Deadline = NO_DEADLINE
) -> Callable:
    """NNCF's ``validation_fn``: (compiled model, items) → (metric in points, one score per
    item)."""

    def validate(compiled: Any, items: Iterable[Item]) -> tuple[float, list[float]]:
        deadline.check("NNCF accuracy control")
        chosen = list(items)
        index = np.array([i for i, _ in chosen])
        output = _outputs(compiled, chosen)
        scores = per_sample(
            metric, reference[index], output, None if labels is None else labels[index]
        )
        return float(scores.mean()), [float(s) for s in scores]

    return validate


def per_sample(
    metric: str, reference: np.ndarray, output: np.ndarray, labels: np.ndarray | None
) -> np.ndarray:
    """Each sample's share of ``metric`` (their mean is
    ``shipyard.verify.metrics.metric_value``)."""
    if metric == "accuracy":
        return (top1(output) == labels) * 100.0
    if metric == "agreement":
        return (top1(output) == top1(reference)) * 100.0
    return row_cosine(reference, output) * 100.0


def _outputs(compiled: Any, items: list[Item]) -> np.ndarray:
    """The first output of ``compiled`` for each item, stacked along the sample axis."""
    first = compiled.output(0)
    return np.concatenate([np.asarray(compiled(feed)[first]) for _, feed in items])
