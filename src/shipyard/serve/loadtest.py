"""``shipyard loadtest``: a closed-loop load generator for KServe v2 servers, like perf_analyzer.

Each of ``concurrency`` clients sends a request, waits for the answer, and sends the next, for
``duration_s`` seconds or until ``max_requests`` answers in total. Inputs are generated from the
model's metadata (random numbers, built-in English sentences for BYTES). Only loopback servers
may be targeted, and both the time and the count are bounded.

Example::

    >>> spec = LoadSpec("http://127.0.0.1:8000", "digits", concurrency=8, duration_s=5)
    >>> result = run_loadtest(spec)  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from shipyard.errors import UsageError
from shipyard.serve.loadtest_http import Tally

MAX_DURATION_S = 600.0
MAX_CONCURRENCY = 256
MAX_REQUESTS = 1_000_000


@dataclass
class LoadSpec:
    """What to send: ``url`` is ``http://host:port`` or ``grpc://host:port``."""

    url: str
    model: str
    concurrency: int = 16
    duration_s: float = 10.0
    batch: int = 1
    max_requests: int = 100_000
    warmup_s: float = 1.0
    dynamic_dim: int = 8
    inputs: dict[str, np.ndarray] | None = None
    """Send these instead of inputs generated from the model's metadata."""


@dataclass
class LoadResult:
    """Throughput and latency percentiles of the answered requests; errors by reason."""

    requests: int
    samples: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    errors: dict[str, int]
    concurrency: int

    @property
    def throughput(self) -> float:
        """Samples per second."""
        return self.samples / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> str:
        errors = sum(self.errors.values())
        text = (
            f"concurrency {self.concurrency}: {self.throughput:.1f} samples/s ({self.requests} "
            "requests in "
            f"{self.seconds:.1f} s), latency p50 {self.percentile(50):.2f} ms, p90 "
            f"{self.percentile(90):.2f} ms, "
            f"p99 {self.percentile(99):.2f} ms, errors {errors}"
        )
        return text + (f" ({dict(self.errors)})" if errors else "")


def check_target(url: str) -> tuple[str, str, int]:
    """(protocol, host, port) of ``url``; refuses anything but a loopback address."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "grpc") or not parts.hostname or not parts.port:
        raise UsageError(
            f"target {url!r} is not http://HOST:PORT or grpc://HOST:PORT; expected e.g. "
            f"http://127.0.0.1:8000"
        )
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port)}
    except socket.gaierror as exc:
        raise UsageError(
            f"target host {parts.hostname!r} does not resolve; expected 127.0.0.1"
        ) from exc
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise UsageError(
            f"target {url!r} is not on this machine; load tests only target loopback "
            f"addresses such as 127.0.0.1"
        )
    return parts.scheme, parts.hostname, parts.port


def run_loadtest(spec: LoadSpec) -> LoadResult:
    """Drive the server at ``spec.url`` closed-loop and measure it."""
    _check_bounds(spec)
    protocol, host, port = check_target(spec.url)
    if spec.inputs is not None:
        inputs = spec.inputs
    else:
        fetch = _http_metadata if protocol == "http" else _grpc_metadata
        inputs = _make_inputs(fetch(host, port, spec.model), spec)
    if protocol == "http":
        from shipyard.serve.loadtest_http import drive_http, raw_request

        body, headers = encode_binary_request(inputs)
        wire = raw_request(host, port, f"/v2/models/{spec.model}/infer", body, headers)
        return _driven(lambda tally: drive_http(host, port, wire, spec.concurrency, tally), spec)
    from shipyard.serve.loadtest_grpc import drive_grpc, grpc_request

    wire = grpc_request(spec.model, inputs)
    return _driven(lambda tally: drive_grpc(f"{host}:{port}", wire, spec.concurrency, tally), spec)


def closed_loop(make_worker: Callable[[], Callable[[], Any]], spec: LoadSpec) -> LoadResult:
    """Run ``spec.concurrency`` workers, each calling its own ``make_worker()`` back to back.

    Answers that start during the warm-up are not counted; a call that raises counts as an error,
    keyed by its HTTP status or exception type.
    """
    _check_bounds(spec)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock, start_gate = threading.Lock(), threading.Barrier(spec.concurrency + 1)
    state = {"measure_from": 0.0, "stop_at": 0.0, "count": 0}

    def worker() -> None:
        try:
            call = make_worker()
            start_gate.wait()
        except Exception:  # noqa: BLE001 - the run is called off below
            start_gate.abort()
            return
        while (began := time.perf_counter()) < state["stop_at"]:
            try:
                call()
                failed = None
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
                failed = _reason(exc)
            done = time.perf_counter()
            if began < state["measure_from"]:
                continue
            with lock:
                if state["count"] >= spec.max_requests:
                    return
                state["count"] += 1
                if failed:
                    errors[failed] += 1
                else:
                    latencies.append((done - began) * 1000)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(spec.concurrency)]
    for thread in threads:
        thread.start()
    state["measure_from"] = time.perf_counter() + spec.warmup_s
    state["stop_at"] = state["measure_from"] + spec.duration_s
    try:
        start_gate.wait(60)
    except threading.BrokenBarrierError:
        raise UsageError(
            f"load test workers could not connect to the server; expected a server answering "
            f"for model {spec.model!r}"
        ) from None
    for thread in threads:
        thread.join(spec.warmup_s + spec.duration_s + 60)
    seconds = min(time.perf_counter(), state["stop_at"]) - state["measure_from"]
    return LoadResult(
        len(latencies),
        len(latencies) * spec.batch,
        max(seconds, 1e-9),
        latencies,
        dict(errors),
        spec.concurrency,
    )


def _driven(drive: Callable[[Tally], None], spec: LoadSpec) -> LoadResult:
    """What ``drive(tally)`` measured: it runs every client until the tally's stop time."""
    measure_from = time.perf_counter() + spec.warmup_s
    tally = Tally(measure_from, measure_from + spec.duration_s, spec.max_requests)
    drive(tally)
    seconds = min(time.perf_counter(), tally.stop_at) - measure_from
    return LoadResult(
        len(tally.latencies_ms),
        len(tally.latencies_ms) * spec.batch,
        max(seconds, 1e-9),
        tally.latencies_ms,
        dict(tally.errors),
        spec.concurrency,
    )


def _check_bounds(spec: LoadSpec) -> None:
    if not 0 < spec.duration_s <= MAX_DURATION_S:
        raise UsageError(
            f"duration {spec.duration_s} s is out of range; expected 0 < duration ≤ "
            f"{MAX_DURATION_S:g} s"
        )
    if not 1 <= spec.concurrency <= MAX_CONCURRENCY:
        raise UsageError(
            f"concurrency {spec.concurrency} is out of range; expected 1 to {MAX_CONCURRENCY}"
        )
    if not 1 <= spec.max_requests <= MAX_REQUESTS:
        raise UsageError(
            f"max requests {spec.max_requests} is out of range; expected 1 to {MAX_REQUESTS}"
        )


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    status = status() if callable(status) else status
    return str(status or type(exc).__name__)


def _make_inputs(metadata: dict[str, Any], spec: LoadSpec) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    inputs = {}
    for tensor in metadata["inputs"]:
        dims = [int(d) for d in tensor["shape"][1:]]  # gRPC JSON metadata spells int64 as strings
        shape = [spec.batch] + [d if d >= 0 else spec.dynamic_dim for d in dims]
        inputs[tensor["name"]] = _random_tensor(tensor["datatype"], shape, rng)
    return inputs


def _random_tensor(datatype: str, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    if datatype == "BYTES":
        from shipyard.sources.examples.minilm import SENTENCES

        sentences = SENTENCES.read_text().splitlines()
        picks = rng.choice(len(sentences), size=int(np.prod(shape)))
        return np.array([sentences[i].encode() for i in picks], dtype=object).reshape(shape)
    from tritonclient.utils import triton_to_np_dtype

    dtype = triton_to_np_dtype(datatype)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype)
    return rng.integers(0, 2, size=shape).astype(dtype)


def _http_metadata(host: str, port: int, model: str) -> dict[str, Any]:
    import http.client

    return _get_json(http.client.HTTPConnection(host, port, timeout=120), f"/v2/models/{model}")


def _get_json(conn: Any, path: str) -> Any:
    import json

    conn.request("GET", path)
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise UsageError(
            f"GET {path} answered {response.status}: {payload[:200]!r}; expected model metadata"
        )
    return json.loads(payload)


def encode_binary_request(inputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """A KServe v2 request with every input as binary data and binary outputs; body and headers."""
    import json

    from shipyard.serve.tensors import to_raw

    entries, blobs = [], []
    for name, array in inputs.items():
        datatype = th_datatype(array)
        blob = to_raw(array, datatype)
        entries.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(blob)},
            }
        )
        blobs.append(blob)
    header = json.dumps({"inputs": entries, "parameters": {"binary_data_output": True}}).encode()
    return b"".join([header, *blobs]), {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def _grpc_metadata(host: str, port: int, model: str) -> dict[str, Any]:
    import tritonclient.grpc as tg

    return tg.InferenceServerClient(f"{host}:{port}").get_model_metadata(model, as_json=True)


def th_datatype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(array.dtype)
