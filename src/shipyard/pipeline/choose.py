"""The bench and choose stages: time every verified candidate beside the baseline, pick the fastest
that passed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shipyard.bench import BenchConfig, time_sessions
from shipyard.bench.timing import Progress
from shipyard.records import Candidate, Timing
from shipyard.verify import trim_padding

if TYPE_CHECKING:
    from shipyard.backends.base import Session
    from shipyard.dataset import Dataset
    from shipyard.deadline import Deadline
    from shipyard.pipeline.options import SearchOptions

BASELINE = "baseline"
StageProgress = Callable[[str, int, int], None]
"""(stage, steps done, steps in all), the build reporter's ``progress``."""


def bench_seconds(bench: BenchConfig, count: int) -> float:
    """Roughly how long the batch-1 blocks of ``count`` sessions take (warm-up included)."""
    return count * bench.block_seconds * (bench.rounds + 1)


PACKAGING_SECONDS = 5.0
"""What writing a package takes, with room to spare (digests, report, manifest)."""


def timing_reserve(bench: BenchConfig, count: int) -> float:
    """Seconds to keep at the end of the time budget for timing ``count`` sessions at the fewest
    rounds, at batch 1 and batched, and for writing the package."""
    return 2 * bench_seconds(dataclasses.replace(bench, rounds=2), count) + PACKAGING_SECONDS


def bench_within(bench: BenchConfig, count: int, deadline: Deadline, reporter: Any) -> BenchConfig:
    """Fewer latency rounds (at least 2) when the full count would overrun the time budget."""
    rounds = bench.rounds
    while (
        rounds > 2
        and bench_seconds(dataclasses.replace(bench, rounds=rounds), count) > deadline.remaining()
    ):
        rounds -= 1
    if rounds < bench.rounds:
        reporter.note(
            f"timing with {rounds} rounds of blocks instead of {bench.rounds} to stay inside the "
            "time budget"
        )
    return dataclasses.replace(bench, rounds=rounds)


def batched_bench(bench: BenchConfig, deadline: Deadline) -> BenchConfig:
    """Throughput timing: two rounds of up to 10 calls, one round of 3 once the time budget is
    spent."""
    if deadline.spent():
        return BenchConfig(
            rounds=1,
            block_seconds=bench.block_seconds,
            min_block=3,
            max_block=3,
            drop=1,
            warmup_calls=1,
        )
    return BenchConfig(rounds=2, block_seconds=bench.block_seconds, max_block=10)


def time_candidates(
    candidates: list[Candidate],
    sessions: dict[str, Session],
    evaluation: Dataset,
    search: SearchOptions,
    progress: StageProgress | None = None,
    batched_config: BenchConfig | None = None,
) -> None:
    """Batch-1 latency and batched throughput of every candidate with a session, in alternating
    blocks."""
    timed = [c for c in candidates if timing_key(c) in sessions]
    one = trim_padding(next(evaluation.batches(1)))
    many = trim_padding(_batch_feed(evaluation, search.throughput_batch))
    latency = time_sessions(sessions, one, search.bench, _named(progress, "timing at batch 1"))
    batched_config = batched_config or BenchConfig(
        rounds=2, block_seconds=search.bench.block_seconds, max_block=10
    )
    batched = time_sessions(
        sessions,
        many,
        batched_config,
        _named(progress, f"timing at batch {search.throughput_batch}"),
    )
    size = len(next(iter(many.values())))
    apart = _batches_apart(timed, sessions) if search.optimize_for == "throughput" else {}
    for candidate in timed:
        stats, stats_many = latency[timing_key(candidate)], batched[timing_key(candidate)]
        candidate.timing = replace(
            candidate.timing or Timing(0, 0, 0, 0, 0),
            p50_ms=stats.p50_ms,
            p90_ms=stats.p90_ms,
            p99_ms=stats.p99_ms,
            mean_ms=stats.mean_ms,
            calls=stats.calls,
            throughput=size / (stats_many.p50_ms / 1000),
            throughput_batch=size,
            warmup_calls=stats.warmup_calls,
            blocks=stats.blocks,
            dropped_per_block=stats.dropped_per_block,
            threads=search.threads,
            throughput_calls=stats_many.calls,
            batches_apart=apart.get(timing_key(candidate)),
        )


def _batches_apart(candidates: list[Candidate], sessions: dict[str, Session]) -> dict[str, bool]:
    """Which sessions keep a batch's samples apart (the proof ``shipyard serve`` runs at load)."""
    from shipyard.verify.batchaxis import prove_batch_axis

    keys = {timing_key(c) for c in candidates}
    return {k: prove_batch_axis(sessions[k].run, sessions[k].signature).batched for k in keys}


def _named(progress: StageProgress | None, what: str) -> Progress | None:
    return None if progress is None else (lambda done, total: progress(what, done, total))


def timing_key(candidate: Candidate) -> str:
    return BASELINE if candidate.name.startswith(BASELINE) else candidate.key


def choose(candidates: list[Candidate], optimize_for: str) -> Candidate | None:
    """The passing candidate with the lowest batch-1 p50, or the highest throughput a batching
    server gets from it (``Timing.served_throughput``)."""
    passing = [c for c in candidates if c.passed and c.timing and c.timing.calls]
    if not passing:
        return None
    if optimize_for == "throughput":
        return max(passing, key=lambda c: c.timing.served_throughput)
    return min(passing, key=lambda c: c.timing.p50_ms)


def _batch_feed(evaluation: Dataset, size: int) -> dict:
    import numpy as np

    index = np.arange(size) % len(evaluation)
    return evaluation.take(index).inputs
