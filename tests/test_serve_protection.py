"""Overload, timeouts, failing models, metrics, access logs and graceful shutdown on a real
server."""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shipyard.backends.fake import write_fake_package
from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig

ROW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def post(port, model, body=ROW, timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", f"/v2/models/{model}/infer", json.dumps(body).encode())
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def with_seven(body=ROW):
    return {"inputs": [{**body["inputs"][0], "data": [7, 7, 7, 7]}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("protect")
    folders = [
        write_fake_package(root / "slow", "slow", delay_ms=400),
        write_fake_package(root / "flaky", "flaky", fail_on=7.0),
    ]
    options = ServeOptions(BatchConfig(max_batch_size=1, max_queue=3, timeout_s=1.0))
    srv = Server(folders, ServerConfig(http_port=0, grpc_port=0), options)
    with srv.running():
        yield srv


def test_overload_gets_503_and_waiting_too_long_gets_504(server):
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: post(server.http_port, "slow"), range(10)))
    statuses = sorted(status for status, _ in answers)
    assert 200 in statuses and 503 in statuses and 504 in statuses, statuses
    overloaded = next(body for status, body in answers if status == 503)
    assert "queued" in overloaded["error"] and "retry" in overloaded["error"]
    timed_out = next(body for status, body in answers if status == 504)
    assert "timeout" in timed_out["error"]
    assert eventually_served(
        server.http_port, "slow"
    )  # the queue drains and the model serves again


def eventually_served(port: int, model: str, seconds: float = 30) -> bool:
    """Whether ``model`` answers 200 within ``seconds`` (retrying while its queue drains)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if post(port, model)[0] == 200:
            return True
        time.sleep(0.05)
    return False


def test_a_failing_model_answers_500_and_the_server_keeps_serving(server):
    status, body = post(server.http_port, "flaky", with_seven())
    assert status == 500 and "fake failure" in body["error"]
    assert post(server.http_port, "flaky") == (
        200,
        {
            "model_name": "flaky",
            "model_version": "1",
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 1], "data": [10.0]}],
        },
    )
    assert get(server.http_port, "/v2/health/live")[0] == 200


def test_metrics_count_requests_failures_latency_queue_and_batches(server):
    post(server.http_port, "flaky")
    post(server.http_port, "flaky", with_seven())
    status, text = get(server.http_port, "/metrics")
    assert status == 200
    for needle in (
        'shipyard_requests_total{model="flaky",protocol="http"}',
        'shipyard_request_failures_total{model="flaky",protocol="http",status="500"}',
        'shipyard_request_latency_seconds_bucket{le="0.005",model="flaky",protocol="http"}',
        'shipyard_queue_seconds_count{model="flaky"}',
        'shipyard_batch_size_bucket{le="1.0",model="flaky"}',
        'shipyard_queue_depth{model="flaky"}',
        'shipyard_compute_seconds_count{model="flaky"}',
    ):
        assert needle in text, needle


def test_access_logs_are_json_lines(server, access_lines):
    post(server.http_port, "flaky")
    entry = next(r for r in access_lines.wait(1) if r.get("path") == "/v2/models/flaky/infer")
    assert (
        entry["status"] == 200
        and entry["method"] == "POST"
        and entry["ms"] > 0
        and entry["bytes_in"] > 0
    )


def test_printed_access_lines_reach_a_pipe_whole_in_writes_a_pipe_keeps_in_one_piece():
    import os

    from shipyard.serve.accesslog import PIPE_BUF, LinePrinter, _whole_line_chunks

    lines = [
        json.dumps({"n": n, "path": "/v2/models/m/infer" + "x" * (n % 300)}) for n in range(200)
    ]  # < 64 KiB: the pipe holds them all
    chunks = _whole_line_chunks(lines)
    assert len(chunks) > 1 and all(len(c) <= PIPE_BUF and c.endswith(b"\n") for c in chunks)
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    printer = LinePrinter(stream)
    for line in lines:
        printer.add(line)
    printer.flush()
    stream.close()
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read().decode().splitlines() == lines


def test_a_client_timeout_shortens_the_server_timeout(server):
    body = {**ROW, "parameters": {"timeout": 100_000}}  # microseconds, as tritonclient sends it
    status, answer = post(server.http_port, "slow", body)
    assert status == 504 and "0.1 s" in answer["error"]  # the server's own timeout is 1 s


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path):
    folder = write_fake_package(tmp_path / "slow", "slow", delay_ms=300)
    srv = Server(
        [folder],
        ServerConfig(http_port=0, grpc_port=None),
        ServeOptions(BatchConfig(max_batch_size=1)),
    )
    srv.start_in_thread()
    port = srv.http_port
    try:
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(post, port, "slow") for _ in range(3)]
            time.sleep(0.1)
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            answers = [f.result() for f in futures]
    finally:
        srv.stop()
        srv.join(15)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert not srv._thread.is_alive()
    with pytest.raises(OSError):
        get(port, "/v2/health/live")
