"""Dynamic batching for one model: requests queue, are joined along the batch axis, run, split.

The batcher lives on the server's event loop; each model instance runs on a thread of its own
(:mod:`shipyard.serve.worker`), so the loop keeps accepting requests while instances compute. A
batch is formed when an instance is free: it takes the oldest request, then joins queued requests
with the same non-batch shape until ``max_batch_size`` samples or until the oldest request has
waited ``max_queue_delay_ms``. Under load the queue fills while instances are busy, so batches grow
without waiting.

A request that finds the queue empty while traffic is light (the previous batch ran a lone request
and left nothing queued) runs at once: with nobody else around, waiting for company only adds the
delay to its latency. Once batches hold several requests, a batch waits, at most the delay from
when it starts to form, until it holds its instance's share of the largest of the last few
batches: the clients a batch just answered come back a moment later, and a batch that went
without them would leave them to a batch of their own (closed-loop clients then split into two
alternating batches, 1 + 15 for 16 clients, at half the throughput). The share (that number over
the instances) keeps several instances running batches side by side: waiting for every client
would run one batch at a time and leave the other instances idle. For the same reason a batch
formed while other instances are idle takes only its share of the queue: clients answered together
come back together, and a batch taking all of them would leave the other instances idle round after
round (2 × 1-thread MiniLM ran 16 clients one batch at a time, at half its throughput). A recent
batch counts its clients as the samples it took, those left queued and those in running batches.
``lone_request_waits=True`` makes every batch wait up to the delay from its oldest request for a
full batch, as Triton's dynamic batcher does.

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
from dataclasses import dataclass

import numpy as np

from shipyard.batching import BatchOutcome, Runner
from shipyard.errors import DataError
from shipyard.serve.errors import BadRequest, NotReady, Overloaded, RequestTimeout, ServeError
from shipyard.serve.metrics import ModelMetrics
from shipyard.serve.worker import InstanceWorker

LOGGER = logging.getLogger("shipyard.serve")
TIMER_SLACK_S = 0.00025
"""uvloop's timers fire on whole milliseconds (rounded), so a deadline timer can fire up to half a
millisecond late: it is set this much early, and a batch this close to its deadline goes now."""
RECENT_BATCHES = 8
"""A batch waits for its instance's share of the largest of this many batches before it."""
__all__ = ["LOGGER", "BatchConfig", "Batcher", "Runner"]


@dataclass
class BatchConfig:
    """How one model is batched and protected."""

    max_batch_size: int = 32
    max_queue_delay_ms: float = 2.0
    instances: int | None = 1
    """Model instances; None measures the fastest instances × threads at start-up
    (:mod:`shipyard.serve.layout`)."""
    max_queue: int = 256
    timeout_s: float = 30.0
    latency_target_ms: float | None = None
    lone_request_waits: bool = False
    """Wait the delay for company even when traffic is light (see the module text)."""


@dataclass(eq=False, slots=True)  # identity: deque.remove must never compare the arrays inside
class _Item:
    inputs: dict[str, np.ndarray]
    size: int
    key: tuple
    future: asyncio.Future
    enqueued: float


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
        self._runners = list(runners)
        self._idle: list[InstanceWorker] = []
        self._workers: list[InstanceWorker] = []
        self._queue: collections.deque[_Item] = collections.deque()
        self._stopping = False
        self._company = False  # did the last batch see other requests (several, or some left)?
        self._recent: collections.deque[int] = collections.deque(maxlen=RECENT_BATCHES)
        self._task: asyncio.Task | None = None
        self._free: asyncio.Semaphore | None = None
        self._wakeup: asyncio.Future | None = None
        self._wake_at = 0  # queued samples that make the waiting collector worth waking
        self._queued = 0  # samples queued (requests that left unseen count until taken)
        self._running = 0  # samples in the batches the instances run
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start collecting batches; call from the event loop that will call ``submit``."""
        self._loop = asyncio.get_running_loop()
        self._workers = [InstanceWorker(self.name, r, self._loop) for r in self._runners]
        for worker in self._workers:
            worker.start()
        self._idle = list(self._workers)
        self._free = asyncio.Semaphore(len(self._workers))
        self._task = self._loop.create_task(self._collect())

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
        key = _shape_key(inputs, self.max_batch > 1)
        item = _Item(inputs, size, key, self._loop.create_future(), time.perf_counter())
        self._queue.append(item)
        self._queued += size
        self.metrics.queue_depth.set(len(self._queue))
        if self._queued >= self._wake_at:
            self._wake()
        timeout = self.config.timeout_s if timeout_s is None else timeout_s
        timer = self._loop.call_later(timeout, self._expire, item, timeout)
        try:
            return await item.future  # cancelling the caller cancels the item: it leaves the queue
        finally:
            timer.cancel()

    def _expire(self, item: _Item, timeout: float) -> None:
        if not item.future.done():  # a batch still running it finds the future done and skips it
            item.future.set_exception(
                RequestTimeout(
                    f"request to model {self.name!r} took over its timeout of {timeout:g} s; "
                    f"expected the server to be less loaded or a longer timeout"
                )
            )

    async def stop(self) -> None:
        """Stop taking requests, finish every queued and running one, then release the workers."""
        self._stopping = True
        self._wake()
        if self._task is not None:
            await self._task
        for _ in self._workers:  # every instance idle: no batch is running any more
            await self._free.acquire()
        for worker in self._workers:
            worker.stop(timeout_s=10)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

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
            self._run(batch, self._idle.pop())

    async def _form_batch(self) -> list[_Item]:
        first = await self._next(None, self.max_batch, None)
        if first is None:
            return []
        batch, total = [first], first.size
        deadline, goal = self._waiting_rule(first)
        room = self._room(first, goal)
        while total < room:
            item = await self._next(first.key, room - total, deadline, goal - total)
            if item is None:
                break
            batch.append(item)
            total += item.size
        self._company = len(batch) > 1 or bool(self._queue)
        self._recent.append(total + self._queued + self._running)
        self.metrics.queue_depth.set(len(self._queue))
        return batch

    def _waiting_rule(self, first: _Item) -> tuple[float, int]:
        """(deadline, samples worth waiting for) of the batch ``first`` opens (module text)."""
        if self.config.lone_request_waits:
            return first.enqueued + self.delay_s, self.max_batch
        if not self._company:
            return 0.0, self.max_batch
        share = -(-max(self._recent) // len(self._workers))  # the clients split between instances
        return time.perf_counter() + self.delay_s, min(self.max_batch, share)

    def _room(self, first: _Item, goal: int) -> int:
        """Samples the batch may take: with other instances idle, its share of the queue (never
        less than it waits for), so that clients answered together do not all join one batch
        and leave the other instances idle."""
        idle = len(self._idle)
        if idle < 2 or self.config.lone_request_waits:
            return self.max_batch
        share = -(-(self._queued + first.size) // idle)
        return min(self.max_batch, max(share, goal))

    async def _next(
        self, key: tuple | None, room: int, deadline: float | None, wanted: int | None = None
    ) -> _Item | None:
        """The oldest live request that fits; when none is queued, waits for one until
        ``deadline`` (forever when None), unless the batch already holds the ``wanted`` samples
        it waits for."""
        while True:
            item = self._take(key, room)
            if item is not None:
                return item
            if deadline is None and self._stopping:
                return None
            wanted = room if wanted is None else min(wanted, room)
            wait = None if deadline is None else deadline - time.perf_counter()
            if wanted <= 0 or (wait is not None and wait <= TIMER_SLACK_S):
                return None
            # a batch being filled wakes when the queue holds what it waits for or at the
            # deadline, not on every arrival: one wake-up per batch instead of one per request
            if wait is None:
                await self._arrival(None)
            else:
                await self._arrival(wait - TIMER_SLACK_S, wanted)

    async def _arrival(self, wait_s: float | None, samples: int = 1) -> None:
        """Until ``samples`` samples are queued (or stop is asked), at most ``wait_s`` seconds."""
        self._wakeup = self._loop.create_future()
        self._wake_at = self._queued + samples if wait_s is not None else 0
        timer = None
        if wait_s is not None:
            timer = self._loop.call_later(wait_s, self._wake)
        try:
            await self._wakeup
        finally:
            self._wakeup = None
            self._wake_at = 0
            if timer is not None:
                timer.cancel()

    def _take(self, key: tuple | None, room: int) -> _Item | None:
        queue = self._queue
        while queue and queue[0].future.done():  # timed out or cancelled while queued
            self._queued -= queue.popleft().size
        for index, item in enumerate(queue):
            if key is None or (item.key == key and item.size <= room and not item.future.done()):
                del queue[index]
                self._queued -= item.size
                return item
        return None

    def _run(self, batch: list[_Item], worker: InstanceWorker) -> None:
        started = time.perf_counter()
        samples = sum(i.size for i in batch)
        self._running += samples

        def done(outcome: BatchOutcome) -> None:
            try:
                self._finish(batch, outcome, started)
            finally:
                self._running -= samples
                self._idle.append(worker)
                self._free.release()

        worker.submit([i.inputs for i in batch], [i.size for i in batch], done)

    def _finish(self, batch: list[_Item], outcome: BatchOutcome, started: float) -> None:
        """On the loop: hand each request its outcome, then count the batch."""
        if outcome.unbatched is not None and self.max_batch > 1:
            LOGGER.warning(
                "model %r returned outputs %s without one row per sample; it runs request by "
                "request from now on",
                self.name,
                outcome.unbatched,
            )
            self.max_batch = 1
        for item, result in zip(batch, outcome.results):
            if item.future.done():
                continue
            if isinstance(result, Exception):
                item.future.set_exception(_as_serve_error(result, self.name))
            else:
                item.future.set_result(result)
        done = time.perf_counter()
        samples = sum(i.size for i in batch)
        self.metrics.observe_batch([started - i.enqueued for i in batch], outcome, samples)
        self._tune(max(done - i.enqueued for i in batch), samples)

    def _tune(self, slowest_s: float, samples: int) -> None:
        target = self.config.latency_target_ms
        if target is None:
            return
        target_s = target / 1000
        if slowest_s > target_s:
            self.delay_s *= 0.5
        elif slowest_s < 0.5 * target_s and samples < self.max_batch:
            self.delay_s = min(self.delay_s + target_s / 50, target_s / 2)


def _shape_key(inputs: dict[str, np.ndarray], batched: bool) -> tuple:
    """What requests must share to be joined: every input's name and shape past the batch axis."""
    if len(inputs) == 1:
        ((name, array),) = inputs.items()
        return ((name, array.shape[1:] if batched else array.shape),)
    return tuple((n, a.shape[1:] if batched else a.shape) for n, a in sorted(inputs.items()))


def _as_serve_error(exc: Exception, model: str) -> ServeError:
    if isinstance(exc, ServeError):
        return exc
    if isinstance(exc, DataError):
        return BadRequest(str(exc))
    return ServeError(f"model {model!r} failed on this request: {type(exc).__name__}: {exc}")
