"""Inference POSTs on the lean path of the HTTP protocol (``serve/http_lean.py``): the same bytes
on the wire as uvicorn's ASGI path, and keep-alive, pipelining, ``Connection: close``, HTTP/1.0,
``Expect: 100-continue``, proxy headers and vanished clients as uvicorn handles them; a real server
on 127.0.0.1, raw sockets as the client."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from shipyard.backends.fake import write_fake_package
from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig
from shipyard.serve.http_infer import InferEndpoint

ROW = json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lean")
    folders = [
        write_fake_package(root / "fake", "fake"),
        write_fake_package(root / "slow", "slow", delay_ms=200),
    ]
    options = ServeOptions(BatchConfig(max_batch_size=1, timeout_s=10))
    srv = Server(folders, ServerConfig(http_port=0, grpc_port=None), options)
    with srv.running():
        yield srv


def post(path: str, body: bytes = ROW, extra: str = "", version: str = "1.1") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


class Wire:
    """A raw keep-alive connection that reads whole responses by their Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 100 "):
            self.buffer = rest
            return head + b"\r\n\r\n"
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head)[1])
        while len(rest) < length:
            self._read()
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        self.buffer = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return False

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed by the server; got {self.buffer[:200]!r}")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def without_date(response: bytes) -> bytes:
    return re.sub(rb"(?im)^date: [^\r]*\r\n", b"", response)


@pytest.fixture
def asgi_calls(monkeypatch):
    """How many inference requests went through the ASGI endpoint (uvicorn's path)."""
    calls = []
    original = InferEndpoint.__call__

    async def counted(self, scope, receive, send):
        calls.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(InferEndpoint, "__call__", counted)
    return calls


@pytest.mark.parametrize(
    "body, extra",
    [
        (ROW, ""),
        (b'{"inputs": [', ""),
        (ROW, "Connection: close\r\n"),
    ],
    ids=["answer", "error", "close"],
)
def test_the_lean_path_writes_what_uvicorn_writes(server, asgi_calls, body, extra):
    answers = []
    for path in ("/v2/models/fake/infer", "/v2/models/fake/infer?path=asgi"):
        wire = Wire(server.http_port)
        try:
            wire.send(post(path, body, extra))
            answers.append(without_date(wire.response()))
        finally:
            wire.close()
    assert asgi_calls == ["/v2/models/fake/infer"]  # the query string took uvicorn's path
    assert answers[0] == answers[1] and answers[0].startswith(b"HTTP/1.1 ")
    assert (b"connection: close\r\n" in answers[0]) == bool(extra)


def test_keep_alive_and_pipelined_requests_are_answered_in_order(server, asgi_calls):
    wire = Wire(server.http_port)
    try:
        wire.send(post("/v2/models/fake/infer"))
        first = wire.response()
        # pipelined: a slow inference, a GET for Starlette, then an inference, in one write
        wire.send(
            post("/v2/models/slow/infer")
            + b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
            + post("/v2/models/fake/infer", ROW.replace(b"[1, 2, 3, 4]", b"[5, 6, 7, 8]"))
        )
        slow, ready, fake = wire.response(), wire.response(), wire.response()
    finally:
        wire.close()
    assert all(r.startswith(b"HTTP/1.1 200 OK") for r in (first, slow, ready, fake))
    assert json.loads(slow.partition(b"\r\n\r\n")[2])["model_name"] == "slow"
    assert json.loads(ready.partition(b"\r\n\r\n")[2]) == {"ready": True}
    data = json.loads(fake.partition(b"\r\n\r\n")[2])["outputs"][0]["data"]
    assert data == [26.0] and asgi_calls == []  # the fake model sums a row


def test_connection_close_and_http_1_0_close_after_the_answer(server):
    for request in (
        post("/v2/models/fake/infer", extra="Connection: close\r\n"),
        post("/v2/models/fake/infer", version="1.0"),
    ):
        wire = Wire(server.http_port)
        try:
            wire.send(request)
            assert wire.response().startswith(b"HTTP/1.1 200 OK")
            assert wire.closed_by_server()
        finally:
            wire.close()


def test_expect_100_continue_takes_uvicorns_path_and_is_answered(server, asgi_calls):
    head = post("/v2/models/fake/infer", extra="Expect: 100-continue\r\n")[: -len(ROW)]
    wire = Wire(server.http_port)
    try:
        wire.send(head)
        assert wire.response().startswith(b"HTTP/1.1 100 Continue")
        wire.send(ROW)
        assert wire.response().startswith(b"HTTP/1.1 200 OK")
    finally:
        wire.close()
    assert asgi_calls == ["/v2/models/fake/infer"]


def test_the_access_log_names_the_client_a_local_proxy_forwards(server, access_lines):
    for path in ("/v2/models/fake/infer", "/v2/models/fake/infer?path=asgi"):
        wire = Wire(server.http_port)
        try:
            wire.send(post(path, extra="X-Forwarded-For: 203.0.113.7\r\n"))
            wire.response()
        finally:
            wire.close()
    lean, asgi = access_lines.wait(2)[:2]
    assert lean["client"] == asgi["client"] == "203.0.113.7"
    assert lean["bytes_in"] == asgi["bytes_in"] == len(ROW) and lean["status"] == 200


def test_a_client_gone_before_its_answer_leaves_the_server_serving(server):
    wire = Wire(server.http_port)
    wire.send(post("/v2/models/slow/infer"))
    time.sleep(0.05)
    wire.close()  # the answer comes 200 ms later, to nobody
    time.sleep(0.3)
    wire = Wire(server.http_port)
    try:
        wire.send(post("/v2/models/fake/infer"))
        assert wire.response().startswith(b"HTTP/1.1 200 OK")
    finally:
        wire.close()


def test_a_body_in_pieces_is_read_as_it_arrives(server):
    request = post("/v2/models/fake/infer")
    wire = Wire(server.http_port)
    try:
        for start in range(0, len(request), 7):
            wire.send(request[start : start + 7])
            time.sleep(0.002)
        answer = wire.response()
    finally:
        wire.close()
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["outputs"][0]["data"] == [10.0]


def test_an_endpoint_that_raises_gets_a_500_and_the_connection_goes_on(server, monkeypatch):
    original = InferEndpoint.respond

    async def broken(self, params, *args):
        if params["model"] == "slow":
            raise RuntimeError("a bug")
        return await original(self, params, *args)

    monkeypatch.setattr(InferEndpoint, "respond", broken)
    wire = Wire(server.http_port)
    try:
        wire.send(post("/v2/models/slow/infer"))
        failed = wire.response()
        wire.send(post("/v2/models/fake/infer"))
        answered = wire.response()
    finally:
        wire.close()
    assert failed.startswith(b"HTTP/1.1 500 ")
    assert "a bug" in json.loads(failed.partition(b"\r\n\r\n")[2])["error"]
    assert answered.startswith(b"HTTP/1.1 200 OK")
