"""Bounded work per request, shared by every front end (KServe v2 HTTP and gRPC, TF Serving, Triton
stats).

* :class:`ByteBudget` — the bytes of request bodies held at once, server-wide; a request that
  would go over is answered 503 at once instead of growing the process.
* :func:`off_loop` — run parsing and decoding in a small worker pool, so a large or hostile body
  never stalls the event loop (health checks and other clients keep being answered); work on at
  most ``INLINE_BYTES`` runs on the loop itself, where it costs less than the thread hand-off.
* :func:`check_options` — refuse zero or negative limits when the server starts, not per request.

Example (a front end decoding a request)::

    >>> async with state.budget.hold() as holding:                   # doctest: +SKIP
    ...     holding.add(len(body))                                    # 503 when the server holds
    too much
    ...     inputs = await off_loop(decode, model, body)               # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from shipyard.errors import UsageError
from shipyard.serve.errors import Overloaded, RequestTooLarge, ServeError

T = TypeVar("T")
JSON_GROWTH = 8
"""Python objects from JSON take about this many times the text's bytes; charged to the budget."""
INLINE_BYTES = 16 * 1024
"""Bodies and outputs up to this size are decoded and encoded on the event loop: parsing them takes
well under a millisecond, less than handing them to a thread and waking the loop again."""

_POOL: ThreadPoolExecutor | None = None


class BodyTimeout(ServeError):
    status = 408
    grpc_code = "DEADLINE_EXCEEDED"


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if (
        _POOL is None
    ):  # a few threads: decoding is CPU work, more would only compete with the models
        _POOL = ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="decode"
        )
    return _POOL


def inline(size: int | None) -> bool:
    """Whether work on ``size`` bytes is small enough to run on the event loop itself."""
    return size is not None and size <= INLINE_BYTES


async def off_loop(function: Callable[..., T], *args: Any, size: int | None = None) -> T:
    """``function(*args)`` in the decode pool, awaited from the event loop; on the loop itself when
    the work is on ``size`` bytes that are :func:`inline`."""
    if inline(size):
        return function(*args)
    return await asyncio.get_running_loop().run_in_executor(_pool(), function, *args)


class ByteBudget:
    """Bytes of request bodies (and their decoded JSON) in flight at once, across the whole
    server."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def reserve(self, size: int) -> None:
        if size > self.limit:  # could never fit: retrying would not help
            raise RequestTooLarge(
                f"the request needs {size} bytes in flight (JSON counts {JSON_GROWTH}×); expected "
                f"at most the server's budget of {self.limit} bytes: send tensors as binary data"
            )
        if self.held + size > self.limit:
            raise Overloaded(
                f"the server holds {self.held} bytes of requests, and {size} more would pass its "
                f"budget of {self.limit} bytes in flight; retry later"
            )
        self.held += size

    def release(self, size: int) -> None:
        self.held = max(0, self.held - size)

    def hold(self) -> Holding:
        """A holding for one request, as ``async with budget.hold() as holding``: ``add`` bytes as
        they arrive; all are released at the end."""
        return Holding(self)


class Holding:
    """The bytes one request holds of a :class:`ByteBudget` (an async context manager that releases
    them; a plain class, as it is entered on every request)."""

    __slots__ = ("budget", "size")

    def __init__(self, budget: ByteBudget) -> None:
        self.budget, self.size = budget, 0

    def add(self, size: int) -> None:
        self.budget.reserve(size)
        self.size += size

    async def __aenter__(self) -> Holding:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.budget.release(self.size)


def check_options(options: Any) -> None:
    """Refuse limits that would break every request (``--timeout 0``, ``--max-request-mb 0``, …)."""
    batch = options.batch
    positive = {
        "--timeout": batch.timeout_s,
        "--max-request-mb": options.max_request_bytes,
        "--max-batch-size": batch.max_batch_size,
        "--instances": 1 if batch.instances is None else batch.instances,
        "--max-queue": batch.max_queue,
        "--max-connections": options.max_connections,
        "--header-timeout": options.header_timeout_s,
        "--body-timeout": options.body_timeout_s,
        "--max-inflight-mb": options.max_inflight_bytes,
    }
    for flag, value in positive.items():
        if not value > 0:
            raise UsageError(
                f"{flag} {value}: expected a limit above 0 (0 would refuse every request)"
            )
    if not batch.max_queue_delay_ms >= 0:
        raise UsageError(f"--max-queue-delay-ms {batch.max_queue_delay_ms}: expected a delay ≥ 0")
    if options.max_inflight_bytes < options.max_request_bytes:
        raise UsageError(
            f"--max-inflight-mb ({options.max_inflight_bytes} bytes) is below --max-request-mb "
            f"({options.max_request_bytes} bytes); expected room for at least one request"
        )
