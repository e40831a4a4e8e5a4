"""Dynamic batching for one model: requests queue, are joined along the batch axis, run, split.

The batcher lives on the server's event loop; the model runs in a thread pool with one worker per
instance, so the loop keeps accepting requests while instances compute. A batch is formed when an
instance is free: it takes the oldest request, then joins queued requests with the same
non-batch shape until ``max_batch_size`` samples or until the oldest request has waited
``max_queue_delay_ms``. Under load the queue fills while instances are busy, so batches grow
without waiting; at light load a request waits at most the delay.

With ``latency_target_ms`` the delay tunes itself: it halves whenever a batch's slowest request
went over the target and grows by a small step while requests finish well under it.

Example::

    >>> config = BatchConfig(max_batch_size=16)
    >>> batcher = Batcher("m", [predictor.run], config, metrics)  # doctest: +SKIP
    >>> outputs = await batcher.submit({"image": x}, size=len(x))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from shipyard.errors import DataError
from shipyard.serve.errors import BadRequest, NotReady, Overloaded, RequestTimeout, ServeError
from shipyard.serve.metrics import ModelMetrics

LOGGER = logging.getLogger("shipyard.serve")
Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class BatchConfig:
    """How one model is batched and protected."""

    max_batch_size: int = 32
    max_queue_delay_ms: float = 2.0
    instances: int = 1
    max_queue: int = 256
    timeout_s: float = 30.0
    latency_target_ms: float | None = None


@dataclass(eq=False)  # identity: deque.remove must never compare the arrays inside
class _Item:
    inputs: dict[str, np.ndarray]
    size: int
    key: tuple
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """Queue, batch and run the requests of one model on ``len(runners)`` instances."""

    def __init__(
        self,
        name: str,
        runners: list[Runner],
        config: BatchConfig,
        metrics: ModelMetrics,
        batched: bool = True,
    ) -> None:
        self.name, self.config, self.metrics = name, config, metrics
        self.max_batch = config.max_batch_size if batched else 1
        self.delay_s = config.max_queue_delay_ms / 1000
        if config.latency_target_ms is not None and config.max_queue_delay_ms <= 0:
            self.delay_s = config.latency_target_ms / 4000
        self._idle = list(runners)
        self._executor = ThreadPoolExecutor(
            max_workers=len(runners), thread_name_prefix=f"model-{name}"
        )
        self._queue: collections.deque[_Item] = collections.deque()
        self._running: set[asyncio.Task] = set()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._free: asyncio.Semaphore | None = None
        self._arrived: asyncio.Event | None = None

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start collecting batches; call from the event loop that will call ``submit``."""
        self._free = asyncio.Semaphore(len(self._idle))
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def submit(
        self, inputs: dict[str, np.ndarray], size: int, timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """Queue one request of ``size`` samples and wait for its outputs."""
        if self._stopping or self._task is None:
            raise NotReady(f"model {self.name!r} is shutting down; expected a running server")
        if len(self._queue) >= self.config.max_queue:
            raise Overloaded(
                f"model {self.name!r} has {len(self._queue)} requests queued, its limit; "
                f"retry later or serve it with more instances or a longer queue"
            )
        key = tuple(
            (n, a.shape[1:] if self.max_batch > 1 else a.shape) for n, a in sorted(inputs.items())
        )
        item = _Item(inputs, size, key, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self.metrics.queue_depth.set(len(self._queue))
        self._arrived.set()
        timeout = self.config.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(item.future, timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(
                f"request to model {self.name!r} took over its timeout of {timeout:g} s; "
                f"expected the server to be less loaded or a longer timeout"
            ) from None

    async def stop(self) -> None:
        """Stop taking requests, finish every queued and running one, then release the workers."""
        self._stopping = True
        if self._arrived is not None:
            self._arrived.set()
        if self._task is not None:
            await self._task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _collect(self) -> None:
        while True:
            await self._free.acquire()
            try:
                batch = await self._form_batch()
            except Exception:  # noqa: BLE001 - a bug here must not stop the model for good
                LOGGER.exception("batcher of model %r failed to form a batch", self.name)
                self._free.release()
                continue
            if not batch:
                self._free.release()
                return
            task = asyncio.get_running_loop().create_task(self._run(batch, self._idle.pop()))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _form_batch(self) -> list[_Item]:
        first = await self._next(None, self.max_batch, None)
        if first is None:
            return []
        batch, total = [first], first.size
        deadline = first.enqueued + self.delay_s
        while total < self.max_batch:
            item = await self._next(first.key, self.max_batch - total, deadline)
            if item is None:
                break
            batch.append(item)
            total += item.size
        self.metrics.queue_depth.set(len(self._queue))
        return batch

    async def _next(self, key: tuple | None, room: int, deadline: float | None) -> _Item | None:
        """The oldest live request that fits; waits until ``deadline`` (forever when None)."""
        while True:
            self._arrived.clear()
            item = self._take(key, room)
            if item is not None:
                return item
            if deadline is None and self._stopping:
                return None
            wait = None if deadline is None else deadline - time.perf_counter()
            if wait is not None and wait <= 0:
                return None
            try:
                await asyncio.wait_for(self._arrived.wait(), wait)
            except asyncio.TimeoutError:
                return None

    def _take(self, key: tuple | None, room: int) -> _Item | None:
        for item in list(self._queue):
            if item.future.done():
                self._queue.remove(item)
            elif key is None or (item.key == key and item.size <= room):
                self._queue.remove(item)
                return item
        return None

    async def _run(self, batch: list[_Item], runner: Runner) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            try:
                outputs = await loop.run_in_executor(self._executor, runner, _concat(batch))
            except Exception as exc:  # noqa: BLE001 - a failing model must not take the server down
                await self._isolate(batch, runner, exc)
            else:
                if not _deliver(batch, outputs):
                    self._unbatch(outputs)
                    await self._isolate(batch, runner, None)
            done = time.perf_counter()
            self.metrics.observe_batch(
                [started - i.enqueued for i in batch], done - started, sum(i.size for i in batch)
            )
            self._tune(max(done - i.enqueued for i in batch), sum(i.size for i in batch))
        finally:
            self._idle.append(runner)
            self._free.release()

    def _unbatch(self, outputs: dict[str, np.ndarray]) -> None:
        shapes = {name: list(np.shape(value)) for name, value in outputs.items()}
        LOGGER.warning(
            "model %r returned outputs %s without one row per sample; it runs request by request "
            "from now on",
            self.name,
            shapes,
        )
        self.max_batch = 1

    async def _isolate(self, batch: list[_Item], runner: Runner, exc: Exception | None) -> None:
        """Run a batch one request at a time: after a failure (so only the culprit fails), or when
        its
        outputs could not be split."""
        if len(batch) == 1 and exc is not None:
            _fail(batch[0], self.name, exc)
            return
        loop = asyncio.get_running_loop()
        for item in batch:
            try:
                _deliver([item], await loop.run_in_executor(self._executor, runner, item.inputs))
            except Exception as single:  # noqa: BLE001
                _fail(item, self.name, single)

    def _tune(self, slowest_s: float, samples: int) -> None:
        target = self.config.latency_target_ms
        if target is None:
            return
        target_s = target / 1000
        if slowest_s > target_s:
            self.delay_s *= 0.5
        elif slowest_s < 0.5 * target_s and samples < self.max_batch:
            self.delay_s = min(self.delay_s + target_s / 50, target_s / 2)


def _concat(batch: list[_Item]) -> dict[str, np.ndarray]:
    if len(batch) == 1:
        return batch[0].inputs
    return {name: np.concatenate([item.inputs[name] for item in batch]) for name in batch[0].inputs}


def _deliver(batch: list[_Item], outputs: dict[str, np.ndarray]) -> bool:
    """Hand each request its rows; False (nothing delivered) when an output has not one row per
    sample.

    Never a fallback to the whole output: that would give one client another's data.
    """
    if len(batch) == 1:
        if not batch[0].future.done():
            batch[0].future.set_result(outputs)
        return True
    total = sum(item.size for item in batch)
    if not all(np.ndim(value) and len(value) == total for value in outputs.values()):
        return False
    start = 0
    for item in batch:
        part = {name: value[start : start + item.size] for name, value in outputs.items()}
        start += item.size
        if not item.future.done():
            item.future.set_result(part)
    return True


def _fail(item: _Item, model: str, exc: Exception) -> None:
    if item.future.done():
        return
    if isinstance(exc, ServeError):
        error = exc
    elif isinstance(exc, DataError):
        error = BadRequest(str(exc))
    else:
        error = ServeError(f"model {model!r} failed on this request: {type(exc).__name__}: {exc}")
    item.future.set_exception(error)
