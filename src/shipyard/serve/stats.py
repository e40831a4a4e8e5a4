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
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass
class Duration:
    """Triton's ``StatisticDuration``: how many, and their total nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9) * count


@dataclass
class ModelStats:
    """The counters of one model, updated from the event loop (batches and front ends)."""

    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    phases: dict[str, Duration] = field(default_factory=lambda: {p: Duration() for p in _PHASES})
    batches: dict[int, dict[str, Duration]] = field(
        default_factory=lambda: defaultdict(lambda: {p: Duration() for p in _BATCH_PHASES})
    )

    def observe_batch(self, queue_s: list[float], timing: BatchTiming, samples: int) -> None:
        self.inference_count += samples
        self.execution_count += 1
        self.last_inference_ms = int(time.time() * 1000)
        for seconds in queue_s:
            self.phases["queue"].add(seconds)
        by_phase = zip(_BATCH_PHASES, (timing.input_s, timing.infer_s, timing.output_s))
        for phase, seconds in by_phase:
            self.phases[phase].add(seconds, len(queue_s))
            self.batches[samples][phase].add(seconds)

    def observe_request(self, seconds: float, ok: bool) -> None:
        self.phases["success" if ok else "fail"].add(seconds)

    def as_json(self, name: str, version: str) -> dict[str, Any]:
        """This model's entry of ``model_stats``, as Triton's HTTP endpoint writes it."""
        phases = {p: {"count": d.count, "ns": d.ns} for p, d in self.phases.items()}
        batches = [
            {
                "batch_size": size,
                **{p: {"count": d.count, "ns": d.ns} for p, d in phases_of_size.items()},
            }
            for size, phases_of_size in sorted(self.batches.items())
        ]
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": phases,
            "response_stats": {},
            "batch_stats": batches,
            "memory_usage": [],
        }


class StatsRegistry:
    """Every model's :class:`ModelStats`, by model name."""

    def __init__(self) -> None:
        self.models: dict[str, ModelStats] = defaultdict(ModelStats)

    def for_model(self, name: str) -> ModelStats:
        return self.models[name]


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
    return {"model_stats": [registry.for_model(m.name).as_json(m.name, m.version) for m in models]}


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
