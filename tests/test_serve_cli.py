"""``shipyard serve`` as a real process (SIGTERM drains in-flight requests), ``shipyard loadtest``."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from shipyard.backends.fake import write_fake_package
from shipyard.cli.main import main
from shipyard.errors import UsageError
from shipyard.serve.loadtest import LoadSpec, run_loadtest

ROW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, None if body is None else json.dumps(body).encode())
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def served(tmp_path):
    folder = write_fake_package(tmp_path / "slow", "slow", delay_ms=300)
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "shipyard.cli.main", "serve", str(folder), "--http-port",
                             str(http_port), "--grpc-port", str(grpc_port), "--max-batch-size", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if request(http_port, "GET", "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("shipyard serve did not become ready")
        yield proc, http_port, grpc_port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def test_sigterm_finishes_in_flight_requests_then_exits(served):
    proc, port, _ = served
    answers = []
    workers = [threading.Thread(target=lambda: answers.append(request(port, "POST", "/v2/models/slow/infer", ROW)))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.15)
    proc.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.join(30)
    out, err = proc.communicate(timeout=30)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert proc.returncode == 0 and "stopped" in out
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert sum(1 for entry in logs if entry.get("path") == "/v2/models/slow/infer" and entry["status"] == 200) == 3


def test_loadtest_verb_reports_throughput_and_percentiles(served, capsys):
    _, port, grpc_port = served
    for url in (f"http://127.0.0.1:{port}", f"grpc://127.0.0.1:{grpc_port}"):
        assert main(["loadtest", url, "--model", "slow", "--concurrency", "2", "--duration", "1",
                     "--warmup", "0.1"]) == 0
        out = capsys.readouterr().out
        assert "samples/s" in out and "p99" in out and "errors 0" in out


def test_loadtest_counts_errors_and_stays_bounded(served):
    _, port, _ = served
    result = run_loadtest(LoadSpec(f"http://127.0.0.1:{port}", "slow", concurrency=2, duration_s=5, max_requests=3,
                                   warmup_s=0))
    assert result.requests <= 3 and result.seconds <= 5.5


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://0.0.0.0:8000", "ftp://127.0.0.1:21", "127.0.0.1"])
def test_loadtest_refuses_non_loopback_or_malformed_targets(url):
    with pytest.raises(UsageError):
        run_loadtest(LoadSpec(url, "m", duration_s=1))


def test_loadtest_refuses_unbounded_runs():
    with pytest.raises(UsageError, match="duration"):
        run_loadtest(LoadSpec("http://127.0.0.1:1", "m", duration_s=10_000))
    with pytest.raises(UsageError, match="concurrency"):
        run_loadtest(LoadSpec("http://127.0.0.1:1", "m", concurrency=10_000))
