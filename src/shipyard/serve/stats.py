"""Triton's statistics extension: ``GET /v2/models[/{m}[/versions/{v}]]/stats`` and gRPC
``ModelStatistics``, with the counters ``tritonclient``'s ``get_inference_statistics`` and
perf_analyzer read.

Per model: ``inference_count`` (samples run), ``execution_count`` (batches run),
``last_inference`` (ms since the epoch), ``inference_stats`` — ``success`` / ``fail`` (requests
and their end-to-end time), ``queue`` (each request's wait for a batch), ``compute_input``
(joining the requests' inputs into one batch), ``compute_infer`` (running the model) and
``compute_output`` (splitting its outputs per request), each counted once per request of the
batch as Triton does — and ``batch_stats`` with the same three phases per executed batch size. A
lone request is neither joined nor split, so its input and output phases are honestly near zero.
Durations are nanoseconds, as Triton's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

_PHASES = (
    "success",
    "fail",
    "queue",
    "compute_input",
    "compute_infer",
    "compute_output",
    "cache_hit",
    "cache_miss",
)
_BATCH_PHASES = ("compute_input", "compute_infer", "compute_output")


class BatchTiming(Protocol):
    """Seconds one batch spent in each of Triton's compute phases (``worker.BatchOutcome``)."""

    input_s: float
    infer_s: float
    output_s: float


class Duration:
    """Triton's ``StatisticDuration`` (how many, and their total nanoseconds): a view of two
    slots of a :class:`ModelStats` counter array."""

    def __init__(self, values: np.ndarray, at: int) -> None:
        self._values, self._at = values, at

    @property
    def count(self) -> int:
        return int(self._values[self._at])

    @property
    def ns(self) -> int:
        return int(self._values[self._at + 1])

    def add(self, seconds: float, count: int = 1) -> None:
        self._values[self._at] += count
        self._values[self._at + 1] += int(seconds * 1e9) * count

    def add_each(self, seconds: list[float]) -> None:
        """Several durations at once, as many ``add(s)``."""
        self._values[self._at] += len(seconds)
        self._values[self._at + 1] += sum(int(s * 1e9) for s in seconds)

    def as_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


_HEAD = 3  # inference_count, execution_count, last_inference_ms
_BATCHES_AT = _HEAD + 2 * len(_PHASES)  # then, per batch size from 1, its three phases
_PER_SIZE = 2 * len(_BATCH_PHASES)


def counter_slots(max_batch: int) -> int:
    """How many int64 counters one model's statistics take, for batches of up to ``max_batch``."""
    return _BATCHES_AT + _PER_SIZE * max(1, max_batch)


class ModelStats:
    """The counters of one model, updated from the event loop (batches and front ends).

    They live in one int64 array so that serving processes can keep them in shared files
    (:class:`SharedStats`) and any process can answer for all of them.
    """

    def __init__(self, values: np.ndarray | None = None, max_batch: int = 64) -> None:
        self._bind(np.zeros(counter_slots(max_batch), np.int64) if values is None else values)

    def _bind(self, values: np.ndarray) -> None:
        self.values = values
        self.phases = {p: Duration(values, _HEAD + 2 * i) for i, p in enumerate(_PHASES)}

    @property
    def max_batch(self) -> int:
        return (len(self.values) - _BATCHES_AT) // _PER_SIZE

    @property
    def inference_count(self) -> int:
        return int(self.values[0])

    @property
    def execution_count(self) -> int:
        return int(self.values[1])

    def batch_phases(self, samples: int) -> dict[str, Duration]:
        """The compute phases of batches of ``samples`` samples."""
        if samples > self.max_batch:
            self._grow(samples)
        at = _BATCHES_AT + _PER_SIZE * (samples - 1)
        return {p: Duration(self.values, at + 2 * i) for i, p in enumerate(_BATCH_PHASES)}

    def _grow(self, samples: int) -> None:
        if isinstance(self.values, np.memmap):
            raise ValueError(
                f"a batch of {samples} samples is over the {self.max_batch} the shared statistics "
                f"were sized for; expected at most max_batch_size"
            )
        grown = np.zeros(counter_slots(samples), np.int64)
        grown[: len(self.values)] = self.values
        self._bind(grown)

    def observe_batch(self, queue_s: list[float], timing: BatchTiming, samples: int) -> None:
        self.values[0] += samples
        self.values[1] += 1
        self.values[2] = int(time.time() * 1000)
        self.phases["queue"].add_each(queue_s)
        of_size = self.batch_phases(samples)
        by_phase = zip(_BATCH_PHASES, (timing.input_s, timing.infer_s, timing.output_s))
        for phase, seconds in by_phase:
            self.phases[phase].add(seconds, len(queue_s))
            of_size[phase].add(seconds)

    def observe_request(self, seconds: float, ok: bool) -> None:
        self.phases["success" if ok else "fail"].add(seconds)

    def as_json(self, name: str, version: str) -> dict[str, Any]:
        """This model's entry of ``model_stats``, as Triton's HTTP endpoint writes it."""
        of_size = {s: self.batch_phases(s) for s in range(1, self.max_batch + 1)}
        batches = [
            {"batch_size": s, **{p: d.as_json() for p, d in phases.items()}}
            for s, phases in of_size.items()
            if phases["compute_infer"].count  # only the sizes that ran, as Triton lists them
        ]
        return {
            "name": name,
            "version": version,
            "last_inference": int(self.values[2]),
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {p: d.as_json() for p, d in self.phases.items()},
            "response_stats": {},
            "batch_stats": batches,
            "memory_usage": [],
        }


class StatsRegistry:
    """Every model's :class:`ModelStats`, by model name; with ``shared``, kept in the files of
    several serving processes, and read back as their sum."""

    def __init__(self, shared: SharedStats | None = None, max_batch: int = 64) -> None:
        self.shared, self.max_batch = shared, max_batch
        self.models: dict[str, ModelStats] = {}

    def for_model(self, name: str) -> ModelStats:
        """This process's counters of ``name``, to update."""
        stats = self.models.get(name)
        if stats is None:
            values = None if self.shared is None else self.shared.own(name, self.max_batch)
            stats = self.models[name] = ModelStats(values, self.max_batch)
        return stats

    def totals(self, name: str) -> ModelStats:
        """The counters of ``name`` over every serving process, to read."""
        if self.shared is None:
            return self.for_model(name)
        self.for_model(name)  # this process's file exists, so there is at least one to add up
        return ModelStats(self.shared.total(name), self.max_batch)


@dataclass(frozen=True)
class SharedStats:
    """Statistics files of the serving processes in ``folder``: each process writes its own
    (``slot``), any process sums them all. Every counter is one aligned int64, written by one
    process only, so a reader never sees half a number (Triton's own counters are no snapshot
    either)."""

    folder: Path
    slot: int

    def own(self, model: str, max_batch: int) -> np.ndarray:
        path = self.folder / f"{_file_key(model)}.{self.slot}.stats"
        return np.memmap(
            path, np.int64, "w+" if not path.exists() else "r+", shape=(counter_slots(max_batch),)
        )

    def total(self, model: str) -> np.ndarray:
        parts = [
            np.fromfile(p, np.int64)
            for p in sorted(self.folder.glob(f"{_file_key(model)}.*.stats"))
        ]
        total = np.sum(parts, axis=0)
        total[2] = max(int(p[2]) for p in parts)  # last_inference: the latest, not a sum
        return total


def _file_key(model: str) -> str:
    return model.encode().hex()  # any model name, as a file name


def stats_json(state: Any, name: str | None, version: str | None) -> dict[str, Any]:
    """The answer to ``GET /v2/models[/{name}[/versions/{version}]]/stats``.

    Without a name, every served model and version; an unknown name or version raises
    :class:`~shipyard.serve.errors.ModelNotFound` (404), as Triton answers.
    """
    registry = state.metrics.stats
    if name:
        models = [state.repository.get(name, version)]
    else:
        models = state.repository.all()
    return {"model_stats": [registry.totals(m.name).as_json(m.name, m.version) for m in models]}


def stats_proto(state: Any, name: str, version: str) -> Any:
    """The gRPC ``ModelStatisticsResponse``, built from the same JSON."""
    from google.protobuf import json_format
    from tritonclient.grpc import service_pb2 as pb

    return json_format.ParseDict(stats_json(state, name, version), pb.ModelStatisticsResponse())


def stats_routes(state: Any) -> list[Any]:
    """The HTTP routes of the extension, for :mod:`shipyard.serve.http`."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from shipyard.serve.errors import ServeError

    async def endpoint(request: Any) -> Any:
        try:
            return JSONResponse(
                stats_json(
                    state, request.path_params.get("model"), request.path_params.get("version")
                )
            )
        except ServeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

    return [
        Route(path, endpoint)
        for path in (
            "/v2/models/stats",
            "/v2/models/{model}/stats",
            "/v2/models/{model}/versions/{version}/stats",
        )
    ]


async def grpc_statistics(state: Any, request: Any, context: Any) -> Any:
    """The ``ModelStatistics`` RPC: an unknown model or version is NOT_FOUND."""
    import grpc

    from shipyard.serve.errors import ServeError

    try:
        return stats_proto(state, request.name, request.version)
    except ServeError as exc:
        await context.abort(grpc.StatusCode[exc.grpc_code], str(exc))
