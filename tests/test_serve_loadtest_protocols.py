"""``shipyard loadtest`` over both protocols against a real `shipyard serve` on 127.0.0.1: answers
counted, failures counted by the protocol's status, its request bound; and the gRPC driver's one
pre-serialized request."""

from __future__ import annotations

import numpy as np
import pytest
from serve_process import start_serve

from shipyard.backends.fake import write_fake_package
from shipyard.serve.loadtest import LoadSpec, run_loadtest
from shipyard.serve.loadtest_grpc import grpc_request

NOT_FOUND = {"http": "404", "grpc": "NOT_FOUND"}
INVALID = {"http": "400", "grpc": "INVALID_ARGUMENT"}


@pytest.fixture(scope="module")
def fast_fake(tmp_path_factory):
    folder = write_fake_package(tmp_path_factory.mktemp("loadtest") / "fast", "fast")
    served = start_serve([folder], "--instances", "1", "--no-access-log")
    try:
        yield served
    finally:
        served.stop()


def url_of(served, protocol: str) -> str:
    port = served.http_port if protocol == "http" else served.grpc_port
    return f"{protocol}://127.0.0.1:{port}"


def test_the_grpc_request_is_the_one_tritonclient_would_send():
    from tritonclient.grpc import service_pb2 as pb

    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    request = pb.ModelInferRequest.FromString(grpc_request("fast", {"x": x}))
    assert request.model_name == "fast" and request.inputs[0].name == "x"
    assert request.inputs[0].datatype == "FP32" and list(request.inputs[0].shape) == [2, 4]
    assert np.array_equal(np.frombuffer(request.raw_input_contents[0], np.float32), x.ravel())


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_loadtest_answers_a_real_server_and_counts_failures_by_status(fast_fake, protocol):
    url = url_of(fast_fake, protocol)
    good = run_loadtest(LoadSpec(url, "fast", concurrency=8, duration_s=1, warmup_s=0.2))
    assert good.requests > 50 and not good.errors and len(good.latencies_ms) == good.requests
    x = {"x": np.ones((1, 4), np.float32)}
    wrong = run_loadtest(LoadSpec(url, "nope", concurrency=2, duration_s=0.5, warmup_s=0, inputs=x))
    assert wrong.requests == 0 and set(wrong.errors) == {NOT_FOUND[protocol]}
    assert wrong.errors[NOT_FOUND[protocol]] > 5
    bad = {"x": np.ones((1, 5), np.float32)}  # the fake model takes 4 features
    spec = LoadSpec(url, "fast", concurrency=2, duration_s=0.5, warmup_s=0, inputs=bad)
    refused = run_loadtest(spec)
    assert refused.requests == 0 and set(refused.errors) == {INVALID[protocol]}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_loadtest_stops_at_its_request_count(fast_fake, protocol):
    url = url_of(fast_fake, protocol)
    spec = LoadSpec(url, "fast", concurrency=4, duration_s=30, max_requests=25, warmup_s=0)
    result = run_loadtest(spec)
    assert result.requests == 25 and result.seconds < 10


def test_grpc_calls_still_in_flight_at_the_end_give_up_after_the_grace(tmp_path, monkeypatch):
    import shipyard.serve.loadtest_grpc as driver

    monkeypatch.setattr(driver, "ANSWER_GRACE_S", 0.3)
    folder = write_fake_package(tmp_path / "slow", "slow", delay_ms=3000)
    served = start_serve([folder], "--instances", "1", "--no-access-log")
    try:
        url = url_of(served, "grpc")
        spec = LoadSpec(url, "slow", concurrency=2, duration_s=0.5, warmup_s=0)
        result = run_loadtest(spec)
    finally:
        served.stop()
    assert result.requests == 0 and result.errors == {"DEADLINE_EXCEEDED": 2}
