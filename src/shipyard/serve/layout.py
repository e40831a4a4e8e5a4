"""How many model instances, of how many runtime threads each, serve a package fastest on this
machine: measured when the server starts, never assumed.

The cores can go to one instance that runs each batch on all of them, or to several instances that
run batches side by side on fewer threads each. Which is faster depends on the model, the runtime
and the CPU: on 2 cores MiniLM on ONNX Runtime served more as two instances of one thread, and the
same model as OpenVINO INT8 as one instance of two (docs/benchmarks.md). Each candidate layout
(``instances × threads`` = the usable cores) loads its instances and runs them concurrently on
batches that share :data:`IN_FLIGHT` samples between them, which is what a loaded server's batcher
forms; layouts alternate over :data:`ROUNDS` rounds and the median samples/s decides. More
instances must beat fewer by :data:`MARGIN`: each costs memory, and a lone request runs on fewer
threads. What this timing cannot see is the front end: a model much faster than the server's own
work per request (the digits CNN, ~25 000 samples/s raw on 2 cores) is bound by the front end, and
there the layout matters little or goes the other way when served (docs/benchmarks.md).

Example::

    >>> from shipyard.serve.layout import choose_layout, Layout, LayoutTiming
    >>> choice = choose_layout([LayoutTiming(Layout(1, 2), 350.0, 16),
    ...                         LayoutTiming(Layout(2, 1), 410.0, 8)])
    >>> choice.layout
    Layout(instances=2, threads=1)
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.records import Signature
from shipyard.verify.batchaxis import batching_proof, probe_sample

IN_FLIGHT = 16
"""Samples in flight across all instances while a layout is timed (16 clients' worth)."""
MARGIN = 0.05
ROUNDS = 5
SECONDS = 0.2
"""Time per layout per round, at least three calls of a batch."""
BUDGET_S = 20.0
"""Longest the measurement may take; a model too slow for it keeps one instance."""
MAX_INSTANCES = 4
MEMORY_SHARE = 0.5
"""Instances may hold at most this share of the available memory (each ~2× the package's files)."""


@dataclass(frozen=True)
class Layout:
    instances: int
    threads: int

    def describe(self) -> str:
        return f"{_count(self.instances, 'instance')} × {_count(self.threads, 'thread')}"


@dataclass(frozen=True)
class LayoutTiming:
    layout: Layout
    samples_per_s: float
    """Median over the rounds."""
    batch: int
    """Samples per call on each instance."""


@dataclass(frozen=True)
class LayoutChoice:
    layout: Layout
    timings: tuple[LayoutTiming, ...]
    reason: str

    def describe(self) -> str:
        return f"{self.layout.describe()} ({self.reason})"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def candidate_layouts(cores: int, threads: int | None, max_instances: int) -> list[Layout]:
    """Layouts that use ``cores``: ``threads`` per instance when given, else every even split."""
    max_instances = max(1, min(max_instances, MAX_INSTANCES))
    if threads is not None:
        return [Layout(i, threads) for i in range(1, max(1, cores // threads) + 1)][:max_instances]
    splits = [i for i in range(1, cores + 1) if cores % i == 0 and i <= max_instances]
    return [Layout(i, cores // i) for i in splits]


def choose_layout(timings: list[LayoutTiming]) -> LayoutChoice:
    """The fastest layout; one with more instances must beat the best so far by ``MARGIN``."""
    ordered = sorted(timings, key=lambda t: t.layout.instances)
    best = ordered[0]
    for timing in ordered[1:]:
        if timing.samples_per_s > best.samples_per_s * (1 + MARGIN):
            best = timing
    measured = ", ".join(
        f"{t.layout.instances}×{t.layout.threads}: {t.samples_per_s:.0f}" for t in ordered
    )
    return LayoutChoice(
        best.layout,
        tuple(ordered),
        f"measured samples/s at {sum_in_flight(best)} in flight: {measured}",
    )


def sum_in_flight(timing: LayoutTiming) -> int:
    return timing.batch * timing.layout.instances


def instance_cap(package: Path) -> int:
    """How many instances fit in ``MEMORY_SHARE`` of the available memory."""
    size = sum(f.stat().st_size for f in package.rglob("*") if f.is_file())
    available = _available_bytes()
    if not size or available is None:
        return MAX_INSTANCES
    return max(1, int(available * MEMORY_SHARE // (2 * size)))


def _available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


Opener = Callable[[int | None], Any]
"""Loads one instance of the package with the given thread count (``shipyard.load``)."""


def measured_instances(
    folder: Path, open_instance: Opener, threads: int | None, max_batch: int
) -> tuple[LayoutChoice, list[Any]]:
    """The open instances of the layout that serves ``folder`` fastest here.

    ``threads`` fixes the threads per instance (only the count is measured); ``max_batch`` is the
    server's batch limit.
    """
    from shipyard.machine import usable_cores

    if runs_on_gpu(folder):
        only = open_instance(threads)
        return LayoutChoice(Layout(1, only.threads), (), "a GPU package: one instance"), [only]
    layouts = affordable(
        candidate_layouts(usable_cores(), threads, MAX_INSTANCES), instance_cap(folder)
    )
    if len(layouts) == 1:
        only = layouts[0]
        instances = [open_instance(only.threads) for _ in range(only.instances)]
        return LayoutChoice(only, (), "the only layout for these cores"), instances

    def batch_limit(instance: Any) -> int:
        inputs = instance.signature.inputs
        limit = min(max_batch, instance.max_batch_size)
        batched = all(spec.batched for spec in inputs)
        return limit if batching_proof(instance, batched, limit).batched else 1

    return measure_layout(open_instance, layouts, batch_limit)


def runs_on_gpu(folder: Path) -> bool:
    """Whether the package's backend runs the model on a GPU (one instance, no split of cores)."""
    import json

    from shipyard.backends import get_backend

    try:
        backend = json.loads((folder / "manifest.json").read_text())["backend"]
        return getattr(get_backend(backend), "device", "cpu") == "gpu"
    except Exception:  # noqa: BLE001 - loading the package says what is wrong with it
        return False


def affordable(layouts: list[Layout], cap: int) -> list[Layout]:
    """The first layouts whose instances, all open at once while timing, stay within ``cap``."""
    kept, total = layouts[:1], layouts[0].instances
    for layout in layouts[1:]:
        total += layout.instances
        if total > cap:
            break
        kept.append(layout)
    return kept


def measure_layout(
    open_instance: Opener, layouts: list[Layout], batch_limit: Callable[[Any], int]
) -> tuple[LayoutChoice, list[Any]]:
    """Time every layout and keep the chosen one's instances open; the others are closed.

    ``batch_limit(instance)`` is the largest batch the server will form for the model (1 for a
    model served request by request).
    """
    opened: dict[Layout, list[Any]] = {}
    try:
        for layout in layouts:
            opened[layout] = [open_instance(layout.threads) for _ in range(layout.instances)]
        first = opened[layouts[0]][0]
        choice = _time_layouts(opened, first.signature, batch_limit(first))
    except BaseException:
        _close_all(opened.values())
        raise
    _close_all(v for k, v in opened.items() if k != choice.layout)
    return choice, opened[choice.layout]


def _time_layouts(
    opened: dict[Layout, list[Any]], signature: Signature, max_batch: int
) -> LayoutChoice:
    sample = probe_sample(signature, 0)
    batches = {layout: _batch(sample, _per_instance(layout, max_batch)) for layout in opened}
    first = next(iter(opened))
    try:
        call_s = max(_warm(instances, batches[layout]) for layout, instances in opened.items())
        seconds = max(SECONDS, 3 * call_s)
        if seconds * len(opened) * ROUNDS > BUDGET_S:
            return LayoutChoice(
                first, (), f"a batch takes {call_s:.2f} s: too slow to measure at start-up"
            )
        rates: dict[Layout, list[float]] = {layout: [] for layout in opened}
        for _ in range(ROUNDS):
            for layout, instances in opened.items():
                rates[layout].append(concurrent_samples_per_s(instances, batches[layout], seconds))
    except Exception as exc:  # noqa: BLE001 - a model the probe cannot time still serves
        return LayoutChoice(first, (), f"could not time it ({type(exc).__name__}: {exc})"[:300])
    return choose_layout(
        [
            LayoutTiming(layout, statistics.median(r), _per_instance(layout, max_batch))
            for layout, r in rates.items()
        ]
    )


def _per_instance(layout: Layout, max_batch: int) -> int:
    if max_batch < 2:
        return 1
    return max(1, min(max_batch, IN_FLIGHT // layout.instances))


def _batch(sample: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    return {name: np.concatenate([value] * size) for name, value in sample.items()}


def _warm(instances: list[Any], batch: dict[str, np.ndarray]) -> float:
    """Run each instance twice; the slowest second call's seconds."""
    slowest = 0.0
    for instance in instances:
        instance.run(batch)
        started = time.perf_counter()
        instance.run(batch)
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def concurrent_samples_per_s(
    instances: list[Any], batch: dict[str, np.ndarray], seconds: float
) -> float:
    """All ``instances`` (anything with ``run(feed)``) run ``batch`` back to back for
    ``seconds``, side by side: their samples/s together."""
    size = len(next(iter(batch.values())))
    calls = [0] * len(instances)
    ends = [0.0] * len(instances)
    errors: list[Exception] = []
    start = threading.Barrier(len(instances) + 1)
    stop_at = [0.0]

    def drive(index: int) -> None:
        start.wait()
        try:
            while time.perf_counter() < stop_at[0]:
                instances[index].run(batch)
                calls[index] += 1
        except Exception as exc:  # noqa: BLE001 - raised again on the calling thread
            errors.append(exc)
        ends[index] = time.perf_counter()

    threads = [
        threading.Thread(target=drive, args=(i,), daemon=True) for i in range(len(instances))
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(calls) * size / max(max(ends) - began, 1e-9)


def _close_all(groups: Any) -> None:
    for group in groups:
        for instance in group:
            instance.close()
