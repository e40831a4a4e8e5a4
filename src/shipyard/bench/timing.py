"""Timing in alternating blocks.

Variants are timed in blocks of calls (A×n, B×n, A×n, …), the first calls of each block dropped,
never call by call: after a call, ONNX Runtime's and OpenMP's worker threads keep spinning for a
while and slow whatever runs next, which made torch eager look 2–3× slower than it is when calls
strictly alternated. Block size adapts to the variant's speed so a slow model is not timed for
minutes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shipyard.backends.base import Session


@dataclass(frozen=True)
class BenchConfig:
    rounds: int = 4
    """How many blocks each variant gets."""
    block_seconds: float = 0.6
    """The time one block aims for; its call count follows from a warm-up estimate."""
    min_block: int = 5
    max_block: int = 100
    drop: int = 2
    """Calls dropped at the start of each block (threads waking up, caches)."""
    warmup_calls: int = 3


@dataclass(frozen=True)
class LatencyStats:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    calls: int
    blocks: int = 0
    warmup_calls: int = 0
    dropped_per_block: int = 0

    @classmethod
    def of(cls, seconds: list[float], config: BenchConfig | None = None) -> LatencyStats:
        ms = np.asarray(seconds) * 1000
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        how = (config.rounds, config.warmup_calls, config.drop) if config else (0, 0, 0)
        return cls(float(p50), float(p90), float(p99), float(ms.mean()), len(ms), *how)


Progress = Callable[[int, int], None]
"""Called with (rounds done, rounds in all) before each round and at the end."""


def time_blocks(
    calls: dict[str, Callable[[], object]],
    config: BenchConfig = BenchConfig(),
    progress: Progress | None = None,
) -> dict[str, LatencyStats]:
    """Time each callable in alternating blocks; returns latency statistics per key."""
    block_sizes = {key: _block_size(call, config) for key, call in calls.items()}
    samples: dict[str, list[float]] = {key: [] for key in calls}
    for done in range(config.rounds):
        if progress:
            progress(done, config.rounds)
        for key, call in calls.items():
            for index in range(block_sizes[key] + config.drop):
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
                if index >= config.drop:
                    samples[key].append(elapsed)
    if progress:
        progress(config.rounds, config.rounds)
    return {key: LatencyStats.of(values, config) for key, values in samples.items()}


def _block_size(call: Callable[[], object], config: BenchConfig) -> int:
    start = time.perf_counter()
    for _ in range(config.warmup_calls):
        call()
    per_call = (time.perf_counter() - start) / config.warmup_calls
    return int(
        np.clip(config.block_seconds / max(per_call, 1e-6), config.min_block, config.max_block)
    )


def time_sessions(
    sessions: dict[str, Session],
    feed: dict[str, np.ndarray],
    config: BenchConfig = BenchConfig(),
    progress: Progress | None = None,
) -> dict[str, LatencyStats]:
    """Time every session on the same feed, in alternating blocks."""
    return time_blocks(
        {key: (lambda s=session: s.run(feed)) for key, session in sessions.items()},
        config,
        progress,
    )


def rss_mb() -> float:
    """This process's resident memory in MiB (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0
