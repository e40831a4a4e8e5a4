"""One model instance on a thread of its own: a batch goes in through a queue, and its per-request
outcomes come back to the event loop in one ``call_soon_threadsafe``.

The thread runs the batch with :func:`shipyard.batching.run_batch`. The event loop only forms
batches and hands out results: no executor future, no task per batch, and no copy of the inputs on
the loop.

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

from shipyard.batching import BatchOutcome, Runner, run_batch


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
