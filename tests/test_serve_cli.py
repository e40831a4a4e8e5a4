"""``shipyard serve`` as a real process: a real ONNX Runtime package answered to tritonclient,
SIGTERM draining
in-flight requests (on the fake backend's slow model, which keeps requests in flight long enough),
and
``shipyard loadtest``."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time

import pytest
from serve_process import start_serve

from shipyard.backends.fake import write_fake_package
from shipyard.cli.main import main
from shipyard.errors import UsageError
from shipyard.serve.loadtest import LoadSpec, run_loadtest

ROW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def request(port, method, path, body=None, timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, None if body is None else json.dumps(body).encode())
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_for_queue_depth(port: int, model: str, depth: int, seconds: float = 30) -> None:
    """Poll ``/metrics`` until ``depth`` requests wait in ``model``'s queue (bounded by
    ``seconds``)."""
    wanted = f'shipyard_queue_depth{{model="{model}"}} {float(depth)}'
    deadline = time.time() + seconds
    while time.time() < deadline:
        if wanted in request(port, "GET", "/metrics")[1].decode():
            return
        time.sleep(0.01)
    raise AssertionError(f"{model}'s queue never held {depth} requests")


@pytest.mark.backend("tritonclient")
def test_a_real_package_served_by_the_process_answers_tritonclient(digits_package):
    import numpy as np
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    import shipyard

    served = start_serve([digits_package], "--no-access-log")
    http_port, grpc_port = served.http_port, served.grpc_port
    try:
        x = shipyard.load(digits_package).signature.inputs[0]
        images = np.random.default_rng(3).random((3, *x.shape[1:]), dtype=np.float32)
        expected = shipyard.load(digits_package).run({x.name: images})["logits"]
        for module, url in (
            (httpclient, f"127.0.0.1:{http_port}"),
            (grpcclient, f"127.0.0.1:{grpc_port}"),
        ):
            client = module.InferenceServerClient(url)
            feed = module.InferInput(x.name, list(images.shape), "FP32")
            feed.set_data_from_numpy(images)
            got = client.infer("digits", [feed]).as_numpy("logits")
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        config = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}").get_model_config(
            "digits"
        )
        layout = f"{config['instance_group'][0]['count']} instance"
        threads = config["parameters"]["threads"]["string_value"]
        assert any(
            line.startswith(f"model digits: {layout}") and f"× {threads} thread" in line
            for line in served.out
        ), served.out
    finally:
        served.stop()


@pytest.fixture
def served(tmp_path):
    folder = write_fake_package(tmp_path / "slow", "slow", delay_ms=300)
    served = start_serve([folder], "--max-batch-size", "1", "--instances", "1")
    try:
        yield served
    finally:
        served.stop()


def test_sigterm_finishes_in_flight_requests_then_exits(served):
    proc, port = served.proc, served.http_port
    answers = []
    workers = [
        threading.Thread(
            target=lambda: answers.append(request(port, "POST", "/v2/models/slow/infer", ROW))
        )
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    wait_for_queue_depth(
        port, "slow", 2
    )  # one request running, two waiting: all three are in flight
    proc.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.join(30)
    out, err = served.output(30)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert proc.returncode == 0 and "stopped" in out
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert (
        sum(
            1
            for entry in logs
            if entry.get("path") == "/v2/models/slow/infer" and entry["status"] == 200
        )
        == 3
    )


def test_access_lines_are_printed_while_the_server_runs(served):
    status, _ = request(served.http_port, "POST", "/v2/models/slow/infer", ROW)
    deadline = time.time() + 10  # printed every 0.2 s, not only at exit
    while time.time() < deadline and not any("/v2/models/slow/infer" in e for e in served.err):
        time.sleep(0.05)
    assert status == 200 and served.proc.poll() is None
    entry = next(json.loads(line) for line in served.err if "/v2/models/slow/infer" in line)
    assert entry["status"] == 200 and entry["method"] == "POST" and entry["bytes_in"] > 0


def test_loadtest_verb_reports_throughput_and_percentiles(served, capsys):
    port, grpc_port = served.http_port, served.grpc_port
    for url in (f"http://127.0.0.1:{port}", f"grpc://127.0.0.1:{grpc_port}"):
        assert (
            main(
                [
                    "loadtest",
                    url,
                    "--model",
                    "slow",
                    "--concurrency",
                    "2",
                    "--duration",
                    "1",
                    "--warmup",
                    "0.1",
                ]
            )
            == 0
        )
        out = capsys.readouterr().out
        assert "samples/s" in out and "p99" in out and "errors 0" in out


def test_loadtest_counts_errors_and_stays_bounded(served):
    port = served.http_port
    result = run_loadtest(
        LoadSpec(
            f"http://127.0.0.1:{port}",
            "slow",
            concurrency=2,
            duration_s=5,
            max_requests=3,
            warmup_s=0,
        )
    )
    assert result.requests <= 3 and result.seconds <= 5.5


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3:8000", "http://0.0.0.0:8000", "ftp://127.0.0.1:21", "127.0.0.1"]
)
def test_loadtest_refuses_non_loopback_or_malformed_targets(url):
    with pytest.raises(UsageError):
        run_loadtest(LoadSpec(url, "m", duration_s=1))


def test_loadtest_refuses_unbounded_runs():
    with pytest.raises(UsageError, match="duration"):
        run_loadtest(LoadSpec("http://127.0.0.1:1", "m", duration_s=10_000))
    with pytest.raises(UsageError, match="concurrency"):
        run_loadtest(LoadSpec("http://127.0.0.1:1", "m", concurrency=10_000))


def test_serve_flags_measure_instances_by_default_and_carry_the_batching_choices():
    from shipyard.cli.main import make_parser
    from shipyard.cli.serve_verbs import _batch_config

    parse = make_parser().parse_args
    assert _batch_config(parse(["serve", "pkg"])).instances is None
    assert _batch_config(parse(["serve", "pkg", "--instances", "3"])).instances == 3
    assert _batch_config(parse(["serve", "pkg", "--instances", "auto"])).instances is None
    assert parse(["export", "triton", "pkg", "--out", "r"]).instances == 1
    assert not _batch_config(parse(["serve", "pkg"])).lone_request_waits
    assert _batch_config(parse(["serve", "pkg", "--lone-request-waits"])).lone_request_waits
    with pytest.raises(SystemExit):
        parse(["serve", "pkg", "--instances", "0"])
