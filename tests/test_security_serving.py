"""Hostile requests against a real server on 127.0.0.1, with real runtimes (ONNX Runtime text, image
and no-batch-axis packages, an OpenVINO package): each test is one behaviour the server bounds."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tiny_packages import image_package, linear_package, openvino_package, png, rows, text_package

from shipyard.backends.fake import write_fake_package
from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig
from shipyard.serve.limits import INLINE_BYTES

MB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("secure")
    folders = [
        linear_package(root / "linear"),
        linear_package(root / "flat", "flat", flatten=True),
        text_package(root / "words"),
        image_package(root / "pictures"),
    ]
    try:
        folders.append(openvino_package(root / "ov"))
    except ImportError:
        pass
    options = ServeOptions(
        BatchConfig(max_batch_size=16, max_queue_delay_ms=20), max_request_bytes=8 * MB
    )
    srv = Server(folders, ServerConfig(http_port=0, grpc_port=0), options)
    with srv.running():
        yield srv


@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    """Small connection, time and byte limits, so the tests reach them quickly."""
    root = tmp_path_factory.mktemp("tight")
    options = ServeOptions(
        BatchConfig(max_batch_size=4, max_queue=4, timeout_s=10),
        max_request_bytes=MB,
        max_connections=8,
        header_timeout_s=1.0,
        body_timeout_s=1.0,
        max_inflight_bytes=MB + MB // 2,
    )
    srv = Server(
        [write_fake_package(root / "slow", "slow", delay_ms=150), linear_package(root / "linear")],
        ServerConfig(http_port=0, grpc_port=None),
        options,
    )
    with srv.running():
        yield srv


def post(port, model, body, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", f"/v2/models/{model}/infer", data, headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data.startswith(b"{") else {
            "error": data.decode()
        }
    finally:
        conn.close()


def live(port) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/v2/health/live")
        return conn.getresponse().status
    finally:
        conn.close()


def tensor(name, datatype, shape, data):
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


def binary_bytes(name, shape, items: list[bytes]) -> tuple[bytes, dict]:
    blob = b"".join(struct.pack("<I", len(i)) + i for i in items)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "datatype": "BYTES",
                    "shape": shape,
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    ).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


# --- batching cannot mix requests
# ---------------------------------------------------------------------------


def test_sixteen_clients_of_a_model_without_a_batch_axis_each_get_their_own_answer(server):
    import tritonclient.http as th

    assert not server.state.repository.get(
        "flat"
    ).proof.batched  # the load-time probe saw [6] for 2 samples

    def ask(seed):
        client = th.InferenceServerClient(
            f"127.0.0.1:{server.http_port}", connection_timeout=30, network_timeout=30
        )
        x = rows(seed)
        tensor_in = th.InferInput("x", [1, 3], "FP32")
        tensor_in.set_data_from_numpy(x)
        return x, client.infer("flat", [tensor_in]).as_numpy("y")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(64)))
    for x, y in answers:
        np.testing.assert_allclose(y, (2 * x + 1).reshape(-1), rtol=1e-6)
    configs = th.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    assert "dynamic_batching" not in configs.get_model_config("flat")  # as the Triton export says
    assert "dynamic_batching" in configs.get_model_config("linear")


def test_a_model_whose_outputs_keep_samples_apart_is_batched(server):
    assert server.state.repository.get("linear").proof.batched
    assert server.state.repository.get("words").proof.batched
    assert server.state.repository.get("pictures").proof.batched


def test_a_bad_request_fails_before_the_queue_without_rerunning_others(server, monkeypatch):
    model = server.state.repository.get("words")
    submitted = []
    original = model.batcher.submit

    async def counting(inputs, size, timeout_s=None):
        submitted.append(size)
        return await original(inputs, size, timeout_s)

    monkeypatch.setattr(model.batcher, "submit", counting)
    body, headers = binary_bytes("text", [1], [b"\xff\xfe not utf-8"])
    status, answer = post(server.http_port, "words", body, headers)
    assert status == 400 and "UTF-8" in answer["error"]
    assert submitted == []
    assert post(server.http_port, "words", tensor("text", "BYTES", [1], ["hello world"]))[0] == 200
    assert submitted == [1]


# --- bounded work per request
# -------------------------------------------------------------------------------


def test_decoding_runs_off_the_event_loop(server, monkeypatch):
    import shipyard.serve.http as front

    threads = []
    original = front.decode_checked

    def recording(*args):
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(front, "decode_checked", recording)
    # bodies up to INLINE_BYTES decode on the loop (cheaper than the hop; tests/test_serve_fastpath)
    body = {**tensor("x", "FP32", [1, 3], [1, 2, 3]), "id": "p" * INLINE_BYTES}
    assert post(server.http_port, "linear", body)[0] == 200
    assert len(threads) == 1 and threads[0].startswith("decode")


def test_tf_serving_predict_is_decoded_off_the_loop_and_checked_before_the_queue(
    server, monkeypatch
):
    import shipyard.serve.tfserving_rest as rest

    threads = []
    original = rest._parse_checked

    def recording(*args):
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(rest, "_parse_checked", recording)
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    conn.request(
        "POST", "/v1/models/words:predict", json.dumps({"instances": [{"b64": "//4="}]}).encode()
    )
    response = conn.getresponse()
    assert response.status == 400 and b"UTF-8" in response.read()  # refused by the pre-queue check
    assert len(threads) == 1 and threads[0].startswith("decode")


def test_millions_of_empty_strings_are_refused_before_decoding(server):
    body, headers = binary_bytes("text", [2_000_000], [b""] * 2_000_000)
    status, answer = post(server.http_port, "words", body, headers)
    assert status == 400 and "max_batch_size" in answer["error"]
    body, headers = binary_bytes("text", [1], [b""] * 1000)  # more elements than the shape declares
    status, answer = post(server.http_port, "words", body, headers)
    assert status == 400 and "more than the 1 BYTES elements" in answer["error"]
    assert live(server.http_port) == 200


def test_a_four_megabyte_text_is_cut_before_tokenising_and_answered(server):
    from shipyard.text import BYTES_PER_TOKEN

    text = "hello world " * (4 * MB // 12)
    predictor = server.state.repository.get("words").predictors[0]
    cut = predictor._texts({"text": np.array([text.encode()], dtype=object)})
    assert len(cut[0].encode()) <= 8 * BYTES_PER_TOKEN
    status, answer = post(server.http_port, "words", tensor("text", "BYTES", [1], [text]))
    short = post(server.http_port, "words", tensor("text", "BYTES", [1], [text[:200]]))[1]
    assert status == 200 and answer["outputs"] == short["outputs"]


def test_the_pixel_budget_is_per_request(server, monkeypatch):
    import shipyard.processing.decode as decode

    monkeypatch.setattr(decode, "MAX_REQUEST_PIXELS", 1_000_000)
    image = png(800, 800)  # 0.64 Mpx each: one fits, two do not
    one, headers = binary_bytes("image", [1], [image])
    assert post(server.http_port, "pictures", one, headers)[0] == 200
    two, headers = binary_bytes("image", [2], [image, image])
    status, answer = post(server.http_port, "pictures", two, headers)
    assert status == 400 and "pixels" in answer["error"]


def test_a_large_image_is_decoded_at_reduced_size_with_the_same_answer(server):
    from shipyard.processing.decode import decode_image, encode_jpeg

    big_jpeg = encode_jpeg(np.full((1600, 2400, 3), (20, 40, 220), np.uint8))
    assert decode_image(big_jpeg, target=16).shape[0] < 1600 // 4  # DCT-scaled JPEG decode
    assert decode_image(png(2400, 1600), target=16).shape[0] < 1600 // 4  # uint8 box reduction
    answers = []
    for image in (png(2400, 1600, (20, 40, 220)), png(24, 16, (20, 40, 220))):
        body, headers = binary_bytes("image", [1], [image])
        status, answer = post(server.http_port, "pictures", body, headers)
        assert status == 200
        answers.append({o["name"]: o["data"] for o in answer["outputs"]})
    assert answers[0]["labels"] == answers[1]["labels"] == ["blue", "green"]
    np.testing.assert_allclose(answers[0]["scores"], answers[1]["scores"], atol=1e-3)


@pytest.mark.parametrize(
    "case",
    ["deep json", "parameters 5", "input parameters", "output parameters", "binary size bool"],
)
def test_malformed_requests_get_400_not_500(server, case):
    x = {"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}
    body = {
        "deep json": b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "parameters 5": {"inputs": [x], "parameters": 5},
        "input parameters": {"inputs": [{**x, "parameters": "binary"}]},
        "output parameters": {"inputs": [x], "outputs": [{"name": "y", "parameters": [1]}]},
        "binary size bool": {"inputs": [{**x, "parameters": {"binary_data_size": True}}]},
    }[case]
    status, answer = post(server.http_port, "linear", body)
    assert status == 400, answer
    assert "expected" in answer["error"]


def test_an_openvino_package_is_served_and_checks_its_inputs(server):
    if "linear-ov" not in server.state.repository.models:
        pytest.skip("OpenVINO is not installed")
    assert server.state.repository.get("linear-ov").proof.batched
    status, answer = post(
        server.http_port, "linear-ov", tensor("x", "FP32", [2, 3], [1, 2, 3, 4, 5, 6])
    )
    assert status == 200 and answer["outputs"][0]["data"] == [3, 5, 7, 9, 11, 13]
    status, answer = post(server.http_port, "linear-ov", tensor("x", "INT64", [1, 3], [1, 2, 3]))
    assert status == 400 and "expected FP32" in answer["error"]


# --- connections, deadlines and the byte budget
# -------------------------------------------------------------


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(15)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and its content-length of body)."""
    sock.settimeout(15)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_an_idle_connection_is_closed_after_the_header_deadline(tight):
    with socket.create_connection(("127.0.0.1", tight.http_port)) as sock:
        assert _closed_by_server(sock)


def test_half_sent_headers_are_closed_after_the_header_deadline(tight):
    with socket.create_connection(("127.0.0.1", tight.http_port)) as sock:
        sock.sendall(b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
        assert _closed_by_server(sock)


def test_a_stalled_body_gets_408(tight):
    with socket.create_connection(("127.0.0.1", tight.http_port)) as sock:
        sock.sendall(
            b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 5000\r\n\r\n{"
        )
        answer = _response(sock)
        assert answer.startswith(b"HTTP/1.1 408") and b"body" in answer


def test_connections_over_the_limit_get_503(tight):
    idle = [socket.create_connection(("127.0.0.1", tight.http_port)) for _ in range(8)]
    try:
        time.sleep(0.2)  # let the server accept them
        status, body = post(tight.http_port, "linear", tensor("x", "FP32", [1, 3], [1, 2, 3]))
        assert status == 503 and "--max-connections" in body["error"]
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert post(tight.http_port, "linear", tensor("x", "FP32", [1, 3], [1, 2, 3]))[0] == 200


def test_bytes_in_flight_over_the_budget_get_503(tight):
    head = b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", tight.http_port)) as first,
        socket.create_connection(("127.0.0.1", tight.http_port)) as second,
    ):
        first.sendall(head % (MB - 10))  # reserved on arrival of its headers, body still to come
        time.sleep(0.3)
        second.sendall(head % (MB // 2 + 100))
        answer = _response(second)
    assert answer.startswith(b"HTTP/1.1 503") and b"budget" in answer
    time.sleep(1.5)  # the first upload's body deadline releases its bytes
    assert post(tight.http_port, "linear", tensor("x", "FP32", [1, 3], [1, 2, 3]))[0] == 200


def test_overload_is_answered_503_and_the_server_stays_up(tmp_path):
    x = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    srv = Server(
        [write_fake_package(tmp_path / "slow", "slow", delay_ms=100)],
        ServerConfig(http_port=0, grpc_port=None),
        ServeOptions(BatchConfig(max_batch_size=2, max_queue=4)),
    )
    with srv.running():
        with ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(lambda _: post(srv.http_port, "slow", x)[0], range(64)))
        assert 503 in statuses and 200 in statuses and set(statuses) <= {200, 503}, statuses
        assert live(srv.http_port) == 200
        assert post(srv.http_port, "slow", x)[0] == 200


# --- start-up and shutdown
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--timeout", "--max-request-mb"])
def test_zero_limits_are_refused_at_start_up(tmp_path, capsys, flag):
    from shipyard.cli.main import main

    folder = write_fake_package(tmp_path / "fake", "fake")
    assert main(["serve", str(folder), "--http-port", "0", "--grpc-port", "-1", flag, "0"]) != 0
    assert f"{flag} 0" in capsys.readouterr().err


def test_shutdown_after_a_stalled_upload_is_quiet_and_bounded(tmp_path, caplog):
    folder = write_fake_package(tmp_path / "fake", "fake")
    srv = Server(
        [folder],
        ServerConfig(http_port=0, grpc_port=None, graceful_timeout_s=0.5),
        ServeOptions(body_timeout_s=60),
    )
    srv.start_in_thread()
    with socket.create_connection(("127.0.0.1", srv.http_port)) as sock:
        sock.sendall(
            b"POST /v2/models/fake/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 5000\r\n\r\n{"
        )
        time.sleep(0.3)
        srv.stop()
        srv.join(20)
    assert not srv._thread.is_alive()
    assert "Traceback" not in caplog.text and "CancelledError" not in caplog.text


def test_after_a_response_half_sent_headers_are_closed_when_keep_alive_comes_first():
    """With the keep-alive timeout below the header deadline, the deadline is armed only when the
    next request's first bytes arrive (uvicorn's keep-alive timer stops then): those bytes must
    not hold the connection open for ever."""
    import asyncio

    import uvicorn

    from shipyard.serve.connections import ConnectionLimits, protocol_class

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = ConnectionLimits(max_connections=8, header_timeout_s=1.0, keep_alive_s=0.5)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="warning",
        http=protocol_class(limits),
        timeout_keep_alive=limits.keep_alive_s,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(15)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.")  # before keep-alive closes it
            assert _closed_by_server(sock)
    finally:
        server.should_exit = True
        thread.join(10)
