"""The calibration subset: its size, warnings when it is too small or unlike the evaluation data,
and the split that lets a quantiser choose a setting on calibration samples it did not fit on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from shipyard.dataset import Dataset

MIN_SAMPLES = 32
"""Below this, activation ranges are estimated from too few samples to trust."""
SHIFT_LIMIT = 0.5
"""Standardised mean difference (in pooled standard deviations) past which the sets look unlike."""


@dataclass
class Calibration:
    dataset: Dataset
    notes: list[str] = field(default_factory=list)


def calibration_set(
    calibration: Dataset, evaluation: Dataset | None, size: int, seed: int = 0
) -> Calibration:
    """At most ``size`` samples of ``calibration`` (seeded), with notes on anything doubtful."""
    subset = calibration
    if len(calibration) > size:
        index = np.sort(np.random.default_rng(seed).permutation(len(calibration))[:size])
        subset = calibration.take(index)
    notes = []
    if len(subset) < MIN_SAMPLES:
        notes.append(
            f"calibration: only {len(subset)} samples; INT8 ranges from fewer than {MIN_SAMPLES} "
            "are unreliable — pass more data with --data"
        )
    if subset.synthetic:
        notes.append("calibration: the data is synthetic, so INT8 ranges may not match real inputs")
    if evaluation is not None:
        notes += [f"calibration: {n}" for n in distribution_shift(subset, evaluation)]
    return Calibration(subset, notes)


def distribution_shift(calibration: Dataset, evaluation: Dataset) -> list[str]:
    """A sentence per float input whose calibration statistics differ clearly from the
    evaluation's."""
    notes = []
    for name, array in calibration.inputs.items():
        other = evaluation.inputs.get(name)
        if other is None or array.dtype.kind != "f" or len(array) == 0 or len(other) == 0:
            continue
        a, b = array.astype(np.float64), other.astype(np.float64)
        pooled = np.sqrt((a.var() + b.var()) / 2) or 1.0
        shift = abs(a.mean() - b.mean()) / pooled
        spread = max(a.std(), b.std()) / max(min(a.std(), b.std()), 1e-12)
        if shift > SHIFT_LIMIT or spread > 2.0:
            notes.append(
                f"input {name!r} looks unlike the evaluation data (mean {a.mean():.3g} vs "
                f"{b.mean():.3g}, "
                f"std {a.std():.3g} vs {b.std():.3g}); calibrate on data like what the model will "
                "see"
            )
    return notes


def feeds(dataset: Dataset, batch: int = 8) -> Iterator[dict[str, np.ndarray]]:
    """Calibration feeds, token batches trimmed to their longest sequence."""
    from shipyard.verify.reference import trim_padding

    for feed in dataset.batches(batch):
        yield trim_padding(feed)


def held_out(dataset: Dataset, fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
    """``dataset`` split (seeded) into samples to calibrate on and samples to score a setting on,
    so a quantiser's own choice (a SmoothQuant alpha) never sees the evaluation set."""
    count = max(1, round(len(dataset) * fraction))
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.take(np.sort(order[count:])), dataset.take(np.sort(order[:count]))


def mean_cosine(reference: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """Mean cosine × 100 between per-sample outputs (each flattened), as the build's metric."""
    scores = []
    for a, b in zip(reference, outputs, strict=True):
        a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        scores.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
    return 100 * float(np.mean(scores))
