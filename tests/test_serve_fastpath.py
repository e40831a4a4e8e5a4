"""The raw ASGI inference endpoint in front of Starlette: the same bytes, headers, errors, limits,
metrics and access log as a Starlette response, on a real server on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading

import numpy as np
import pytest
from starlette.responses import JSONResponse

import shipyard
from shipyard.backends.fake import write_fake_package
from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig
from shipyard.serve.http import encode_response
from shipyard.serve.http_infer import match_infer_path
from shipyard.serve.limits import INLINE_BYTES
from shipyard.serve.loadtest import encode_binary_request

MB = 1 << 20
ROW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
SHOWN = ("content-type", "content-length", "inference-header-content-length")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastpath")
    return {
        "fake": write_fake_package(root / "fake", "fake"),
        "fake2": write_fake_package(root / "fake2", "fake", version=2, scale=2.0),
        "slow": write_fake_package(root / "slow", "slow", delay_ms=150),
    }


@pytest.fixture(scope="module")
def server(folders):
    options = ServeOptions(
        BatchConfig(max_batch_size=8, max_queue_delay_ms=5, timeout_s=10),
        max_request_bytes=MB,
        body_timeout_s=1.0,
        max_inflight_bytes=MB + MB // 2,
    )
    srv = Server(list(folders.values()), ServerConfig(http_port=0, grpc_port=None), options)
    with srv.running():
        yield srv


def exchange(port, method, path, body=b"", headers=None):
    """(status, headers by lower-case name, body bytes) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def starlette_view(response) -> tuple[int, dict, bytes]:
    headers = {k.decode(): v.decode() for k, v in response.raw_headers}
    return response.status_code, headers, response.body


def shown(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if k in SHOWN}


@pytest.mark.parametrize(
    "path, params",
    [
        ("/v2/models/m/infer", {"model": "m"}),
        ("/v2/models/m/versions/3/infer", {"model": "m", "version": "3"}),
        ("/v2/models/stats/infer", {"model": "stats"}),
        ("/v2/models/m/infer/", None),
        ("/v2/models/m", None),
        ("/v2/models//infer", None),
        ("/v2/models/a/b/infer", None),
        ("/v2/models/m/versions/infer", None),
        ("/v1/models/m:predict", None),
    ],
)
def test_only_inference_paths_take_the_fast_path(path, params):
    assert match_infer_path(path) == params


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_answers_are_byte_for_byte_what_starlette_would_send(server, folders, binary):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    if binary:
        body, headers = encode_binary_request({"x": x})
        header = json.loads(body[: int(headers["Inference-Header-Content-Length"])])
    else:
        header = {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.ravel().tolist()}
            ]
        }
        body, headers = json.dumps(header).encode(), {}
    status, got_headers, got = exchange(
        server.http_port, "POST", "/v2/models/fake/infer", body, headers
    )
    model = server.state.repository.get("fake")
    results = shipyard.load(folders["fake2"]).run({"x": x})
    expected = starlette_view(encode_response(model, header, results, None))
    assert (status, shown(got_headers), got) == expected


def test_errors_are_byte_for_byte_starlette_json_responses(server):
    for path, body, status in [
        ("/v2/models/nope/infer", json.dumps(ROW).encode(), 404),
        ("/v2/models/fake/versions/9/infer", json.dumps(ROW).encode(), 404),
        ("/v2/models/fake/infer", b'{"inputs": [', 400),
        ("/v2/models/fake/infer", b"x" * (MB + 1), 413),
    ]:
        got_status, headers, got = exchange(server.http_port, "POST", path, body)
        message = json.loads(got)["error"]
        expected = starlette_view(JSONResponse({"error": message}, status_code=status))
        assert (got_status, shown(headers), got) == expected, path


def test_versions_and_the_latest_version_answer_on_the_fast_path(server):
    row = json.dumps(ROW).encode()
    latest = json.loads(exchange(server.http_port, "POST", "/v2/models/fake/infer", row)[2])
    first = json.loads(
        exchange(server.http_port, "POST", "/v2/models/fake/versions/1/infer", row)[2]
    )
    assert (latest["model_version"], latest["outputs"][0]["data"]) == ("2", [20.0])
    assert (first["model_version"], first["outputs"][0]["data"]) == ("1", [10.0])


def test_other_methods_and_paths_still_go_through_starlette(server):
    assert exchange(server.http_port, "GET", "/v2/models/fake/infer")[0] == 405
    status, _, body = exchange(server.http_port, "GET", "/v2/models/fake")
    assert status == 200 and json.loads(body)["name"] == "fake"
    assert exchange(server.http_port, "GET", "/v2/health/ready")[0] == 200


def test_a_gzip_body_is_inflated_and_a_gzip_bomb_is_413(server):
    body = gzip.compress(json.dumps(ROW).encode())
    status, _, answer = exchange(
        server.http_port, "POST", "/v2/models/fake/infer", body, {"Content-Encoding": "gzip"}
    )
    assert status == 200 and json.loads(answer)["outputs"][0]["data"] == [20.0]
    bomb = gzip.compress(b" " * (2 * MB))
    status, _, answer = exchange(
        server.http_port, "POST", "/v2/models/fake/infer", bomb, {"Content-Encoding": "gzip"}
    )
    assert status == 413 and "inflates" in json.loads(answer)["error"]


def test_a_chunked_body_over_the_limit_is_413(server):
    def chunks():
        for _ in range(12):
            yield b"x" * (MB // 10)

    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        conn.request("POST", "/v2/models/fake/infer", chunks(), encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413 and b"expected at most" in response.read()
    finally:
        conn.close()


def test_a_stalled_body_gets_408_on_the_fast_path(server):
    with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
        sock.sendall(
            b"POST /v2/models/fake/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 5000\r\n\r\n{"
        )
        sock.settimeout(20)
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b'{"error":' in answer


def test_the_fast_path_counts_metrics_stats_and_writes_the_access_log(server, access_lines):
    before = server.state.metrics.stats.for_model("slow").phases["success"].count
    body = json.dumps(ROW).encode()
    assert exchange(server.http_port, "POST", "/v2/models/slow/infer", body)[0] == 200
    assert exchange(server.http_port, "POST", "/v2/models/slow/infer", b"{")[0] == 400
    ok, bad = access_lines.wait(2)[:2]
    assert ok["path"] == "/v2/models/slow/infer" and ok["method"] == "POST"
    assert (ok["status"], bad["status"]) == (200, 400)
    assert ok["bytes_in"] == len(body) and ok["bytes_out"] > 0 and ok["ms"] > 0
    stats = server.state.metrics.stats.for_model("slow")
    assert stats.phases["success"].count == before + 1 and stats.phases["fail"].count >= 1
    text = exchange(server.http_port, "GET", "/metrics")[2].decode()
    assert 'shipyard_request_failures_total{model="slow",protocol="http",status="400"}' in text


def test_small_bodies_decode_on_the_loop_and_large_ones_off_it(server, monkeypatch):
    import shipyard.serve.http as front

    threads = []
    original = front.decode_checked

    def recording(*args):
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(front, "decode_checked", recording)
    small = json.dumps(ROW).encode()
    assert len(small) <= INLINE_BYTES
    assert exchange(server.http_port, "POST", "/v2/models/fake/infer", small)[0] == 200
    padded = json.dumps({**ROW, "id": "p" * INLINE_BYTES}).encode()
    assert exchange(server.http_port, "POST", "/v2/models/fake/infer", padded)[0] == 200
    assert not threads[0].startswith("decode") and threads[1].startswith("decode"), threads


def test_concurrent_clients_each_get_their_own_rows_on_the_fast_path(server):
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        body = {"inputs": [{**ROW["inputs"][0], "data": [i, i, i, i]}]}
        status, _, answer = exchange(
            server.http_port, "POST", "/v2/models/slow/infer", json.dumps(body).encode()
        )
        return status, json.loads(answer)["outputs"][0]["data"]

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(12)))
    assert answers == [(200, [4.0 * i]) for i in range(12)]


def test_the_body_deadline_of_python_3_10_times_out_and_lets_other_cancels_through():
    import asyncio

    from shipyard.serve.http import _TaskDeadline

    async def stalled(seconds):
        async with _TaskDeadline(seconds):
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        asyncio.run(stalled(0.05))

    async def cancelled_from_outside():
        task = asyncio.ensure_future(stalled(10))
        await asyncio.sleep(0.05)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled_from_outside())


def test_a_repeated_binary_header_is_decoded_from_its_plan_and_answers_its_own_data(
    server, folders
):
    from shipyard.serve import headercache

    model = server.state.repository.get("fake")
    reference = shipyard.load(folders["fake2"])
    first_header = None
    for i in range(3):
        x = np.full((2, 4), float(i), dtype=np.float32)
        body, headers = encode_binary_request({"x": x})
        size = int(headers["Inference-Header-Content-Length"])
        if first_header is None:
            first_header = body[:size]
        assert body[:size] == first_header  # the same JSON header every time, only data differs
        status, got_headers, got = exchange(
            server.http_port, "POST", "/v2/models/fake/infer", body, headers
        )
        header = json.loads(body[:size])  # a plain dict: what Starlette's route would answer
        expected = starlette_view(encode_response(model, header, reference.run({"x": x}), None))
        assert (status, shown(got_headers), got) == expected
    plan = headercache.plan_for(model, first_header, server.state.options.max_request_bytes)
    assert plan is not None and len(plan.header.responses) == 1


def test_a_remembered_header_with_the_wrong_binary_size_is_still_refused(server):
    x = np.ones((1, 4), dtype=np.float32)
    body, headers = encode_binary_request({"x": x})
    assert exchange(server.http_port, "POST", "/v2/models/fake/infer", body, headers)[0] == 200
    status, _, answer = exchange(
        server.http_port, "POST", "/v2/models/fake/infer", body[:-4], headers
    )
    assert status == 400 and "binary_data_size" in json.loads(answer)["error"]
