"""Several requests run as one batch, and the answers split back per request, safely.

The requests' inputs are joined along the batch axis and run as one call; the outputs are split
by rows. When the joined call fails, or an output has not one row per sample, every request runs
alone, so only the culprit fails and no request is ever handed another's rows. ``shipyard serve``'s
model instances (:mod:`shipyard.serve.worker`) and the Triton Python-backend ``model.py``
(:mod:`shipyard.export.triton_model`) both run batches through here; it needs nothing but numpy.

Example::

    >>> outcome = run_batch(predictor.run, [inputs_a, inputs_b], [1, 3])  # doctest: +SKIP
    >>> outcome.results  # per request: its outputs, or its exception  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
Outcome = dict[str, np.ndarray] | Exception
__all__ = ["BatchOutcome", "Outcome", "Runner", "run_batch", "run_one", "split_rows"]


@dataclass
class BatchOutcome:
    """What one batch came to: per request its outputs or its exception, in the batch's order."""

    results: list[Outcome]
    seconds: float
    unbatched: dict[str, list[int]] | None = None
    """Output shapes, when the model's outputs could not be split per request."""
    input_s: float = 0.0
    """Joining the requests' inputs into one batch (Triton's ``compute_input``)."""
    output_s: float = 0.0
    """Splitting the outputs back per request (Triton's ``compute_output``)."""

    @property
    def infer_s(self) -> float:
        """Running the model (Triton's ``compute_infer``): the rest of the batch's time."""
        return max(0.0, self.seconds - self.input_s - self.output_s)


def run_batch(
    runner: Runner, inputs: list[dict[str, np.ndarray]], sizes: list[int]
) -> BatchOutcome:
    """Run requests as one batch and split the outputs; never raises."""
    if len(inputs) == 1:
        return BatchOutcome([run_one(runner, inputs[0])], 0.0)
    try:
        started = time.perf_counter()
        joined = {name: np.concatenate([i[name] for i in inputs]) for name in inputs[0]}
        input_s = time.perf_counter() - started
        outputs = runner(joined)
    except Exception:  # noqa: BLE001 - a failing batch runs request by request: only the culprit fails
        return BatchOutcome([run_one(runner, i) for i in inputs], 0.0)
    split_started = time.perf_counter()
    parts = split_rows(outputs, sizes)
    if parts is None:
        shapes = {name: list(np.shape(value)) for name, value in outputs.items()}
        return BatchOutcome([run_one(runner, i) for i in inputs], 0.0, shapes)
    return BatchOutcome(list(parts), 0.0, None, input_s, time.perf_counter() - split_started)


def split_rows(
    outputs: dict[str, np.ndarray], sizes: list[int]
) -> list[dict[str, np.ndarray]] | None:
    """Each request's rows, or None when an output has not one row per sample.

    Never a fallback to the whole output: that would give one client another's data.
    """
    total = sum(sizes)
    if not all(np.ndim(value) and len(value) == total for value in outputs.values()):
        return None
    parts, start = [], 0
    for size in sizes:
        parts.append({name: value[start : start + size] for name, value in outputs.items()})
        start += size
    return parts


def run_one(runner: Runner, inputs: dict[str, np.ndarray]) -> Outcome:
    try:
        return runner(inputs)
    except Exception as exc:  # noqa: BLE001 - handed to that request, never up the thread
        return exc
