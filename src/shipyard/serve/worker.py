"""One model instance on a thread of its own: a batch goes in through a queue, and its per-request
outcomes come back to the event loop in one ``call_soon_threadsafe``.

The thread joins the batch's inputs, runs the model, splits the outputs per request and, when the
batch fails or its outputs have not one row per sample, runs the requests one by one so only the
culprit fails. The event loop only forms batches and hands out results: no executor future, no task
per batch, and no copy of the inputs on the loop.

Example::

    >>> worker = InstanceWorker("m", predictor.run, loop)  # doctest: +SKIP
    >>> worker.start()  # doctest: +SKIP
    >>> worker.submit([inputs_a, inputs_b], [1, 3], on_done)  # on_done(BatchOutcome) on the loop
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
Outcome = dict[str, np.ndarray] | Exception


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


@dataclass
class _Job:
    inputs: list[dict[str, np.ndarray]]
    sizes: list[int]
    done: Callable[[BatchOutcome], None]


class InstanceWorker:
    """Runs the batches of one model instance on a dedicated thread."""

    def __init__(self, name: str, runner: Runner, loop: asyncio.AbstractEventLoop) -> None:
        self.runner, self._loop = runner, loop
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=f"model-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(
        self,
        inputs: list[dict[str, np.ndarray]],
        sizes: list[int],
        done: Callable[[BatchOutcome], None],
    ) -> None:
        """Run one batch; ``done(outcome)`` is then called on the event loop."""
        self._jobs.put(_Job(inputs, sizes, done))

    def stop(self, timeout_s: float | None = None) -> None:
        """End the thread after the batches already submitted."""
        self._jobs.put(None)
        self._thread.join(timeout_s)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            started = time.perf_counter()
            outcome = run_batch(self.runner, job.inputs, job.sizes)
            outcome.seconds = time.perf_counter() - started
            try:
                self._loop.call_soon_threadsafe(job.done, outcome)
            except RuntimeError:  # the loop is closed: nobody is waiting for these answers
                return


def run_batch(
    runner: Runner, inputs: list[dict[str, np.ndarray]], sizes: list[int]
) -> BatchOutcome:
    """Run requests as one batch and split the outputs; never raises."""
    if len(inputs) == 1:
        return BatchOutcome([_run_one(runner, inputs[0])], 0.0)
    try:
        started = time.perf_counter()
        joined = {name: np.concatenate([i[name] for i in inputs]) for name in inputs[0]}
        input_s = time.perf_counter() - started
        outputs = runner(joined)
    except Exception:  # noqa: BLE001 - a failing batch runs request by request: only the culprit fails
        return BatchOutcome([_run_one(runner, i) for i in inputs], 0.0)
    split_started = time.perf_counter()
    parts = split_rows(outputs, sizes)
    if parts is None:
        shapes = {name: list(np.shape(value)) for name, value in outputs.items()}
        return BatchOutcome([_run_one(runner, i) for i in inputs], 0.0, shapes)
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


def _run_one(runner: Runner, inputs: dict[str, np.ndarray]) -> Outcome:
    try:
        return runner(inputs)
    except Exception as exc:  # noqa: BLE001 - handed to that request, never up the thread
        return exc
