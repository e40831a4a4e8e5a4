"""The build's data stage: read ``--data`` (or make synthetic data), split it, pick the metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.dataset import Dataset, Split, split
from shipyard.inputs import load_build_data
from shipyard.verify import choose_metric

if TYPE_CHECKING:
    from shipyard.pipeline.options import DataOptions
    from shipyard.sources import Source


@dataclass
class BuildData:
    """The data every later stage reads: the split, the capped evaluation set and the metric."""

    dataset: Dataset
    parts: Split
    evaluation: Dataset
    calibration: Dataset
    """At most ``--calibration-size`` samples of the calibration split, for quantisation."""
    metric: str
    notes: list[str] = field(default_factory=list)


def read_data(
    source: Source, options: DataOptions, metric: str | None, wants_int8: bool
) -> BuildData:
    """Load, split and cap the build's data; notes say what it is and when it is too small."""
    from shipyard.quantize.calibration import calibration_set

    dataset = load_build_data(options.data, source, options.image)
    parts = split(dataset, options.eval_fraction, options.seed)
    evaluation = _capped(parts.evaluation, options.max_eval, options.seed)
    chosen = calibration_set(parts.calibration, evaluation, options.calibration_size, options.seed)
    chosen.dataset.notes.extend(chosen.notes)
    notes = _data_notes(dataset, parts.calibration, evaluation) + (
        chosen.notes if wants_int8 else []
    )
    return BuildData(
        dataset,
        parts,
        evaluation,
        chosen.dataset,
        choose_metric(metric, source.task, evaluation.labels is not None),
        notes,
    )


def _capped(dataset: Dataset, limit: int, seed: int) -> Dataset:
    if len(dataset) <= limit:
        return dataset
    import numpy as np

    return dataset.take(np.sort(np.random.default_rng(seed).permutation(len(dataset))[:limit]))


def _data_notes(dataset: Dataset, calibration: Dataset, evaluation: Dataset) -> list[str]:
    notes = [
        f"data: {dataset.description}; {len(calibration)} calibration / {len(evaluation)} "
        "evaluation samples"
    ]
    if dataset.synthetic:
        notes.append(
            "no --data: the numbers below measure speed and fidelity to the source, not task "
            "accuracy"
        )
    return notes + dataset.notes
