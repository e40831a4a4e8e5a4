"""Prometheus metrics of one server, in its own registry so several servers can share a process.

In a serving process of ``shipyard serve --workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set before
``prometheus_client`` is imported), the values live in that folder's files and ``/metrics`` sums
every worker's, as prometheus_client's multiprocess mode does for gunicorn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from shipyard.serve.stats import BatchTiming, ModelStats, SharedStats, StatsRegistry

MULTIPROCESS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class ModelMetrics:
    """The metric children of one model; the batcher and front ends report through these."""

    queue_seconds: Histogram
    compute_seconds: Histogram
    batch_size: Histogram
    queue_depth: Gauge
    stats: ModelStats = field(default_factory=ModelStats)

    def observe_batch(self, queue_s: list[float], timing: BatchTiming, samples: int) -> None:
        """One executed batch: each request's queue wait, the phases' times and the samples run."""
        for seconds in queue_s:
            self.queue_seconds.observe(seconds)
        self.compute_seconds.observe(timing.infer_s)
        self.batch_size.observe(samples)
        self.stats.observe_batch(queue_s, timing, samples)


class Metrics:
    """Requests, failures, latency, queue time, batch size and queue depth per model."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, shared: SharedStats | None = None, max_batch: int = 64) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shipyard_requests", "Inference requests received", ["model", "protocol"], registry=r
        )
        self.failures = Counter(
            "shipyard_request_failures",
            "Inference requests that failed",
            ["model", "protocol", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_request_latency_seconds",
            "End-to-end inference latency",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._queue = Histogram(
            "shipyard_queue_seconds",
            "Time a request waited in the batch queue",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._compute = Histogram(
            "shipyard_compute_seconds",
            "Time the model took per batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._batch = Histogram(
            "shipyard_batch_size",
            "Requests' samples per executed batch",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._depth = Gauge(
            "shipyard_queue_depth",
            "Requests waiting in the batch queue",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",  # the workers' queues that are still there, added up
        )
        self.stats = StatsRegistry(
            shared, max_batch
        )  # Triton's statistics extension, beside the Prometheus view
        self._children: dict[tuple[str, str], tuple[Counter, Histogram, ModelStats]] = {}

    def for_model(self, model: str) -> ModelMetrics:
        return ModelMetrics(
            self._queue.labels(model),
            self._compute.labels(model),
            self._batch.labels(model),
            self._depth.labels(model),
            self.stats.for_model(model),
        )

    def observe_request(self, model: str, protocol: str, seconds: float, status: int) -> None:
        children = self._children.get((model, protocol))
        if children is None:  # labels() locks and hashes: looked up once per model and protocol
            children = self._children[model, protocol] = (
                self.requests.labels(model, protocol),
                self.latency.labels(model, protocol),
                self.stats.for_model(model),
            )
        count, latency, stats = children
        count.inc()
        latency.observe(seconds)
        stats.observe_request(seconds, status < 400)
        if status >= 400:
            self.failures.labels(model, protocol, str(status)).inc()

    def render(self) -> bytes:
        folder = os.environ.get(MULTIPROCESS_FOLDER)
        if not folder:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker, folder)
        return generate_latest(every_worker)
