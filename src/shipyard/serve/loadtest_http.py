"""The HTTP side of ``shipyard loadtest``: every connection driven from one thread.

A thread per connection with ``http.client`` spends about 200 µs of CPU per request (header
parsing through ``email``, and the GIL passed between 16–32 threads); on a two-core machine that
is CPU taken from the server being measured. Here each request is built once as raw bytes, the
keep-alive sockets wait in one ``selectors`` loop, and an answer is read only as far as its status
line and ``Content-Length``: a closed loop that costs the machine little more than the syscalls,
as perf_analyzer's C++ client does.

Example::

    >>> wire = raw_request("127.0.0.1", 8000, "/v2/models/m/infer", body, headers)  # doctest: +SKIP
    >>> tally = Tally(measure_from, stop_at, max_requests=10_000)  # doctest: +SKIP
    >>> drive_http("127.0.0.1", 8000, wire, concurrency=16, tally=tally)  # doctest: +SKIP
"""

from __future__ import annotations

import selectors
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

from shipyard.errors import UsageError

RECV_BYTES = 1 << 16
MAX_HEADER_BYTES = 64 * 1024
ANSWER_GRACE_S = 60.0
"""How long requests still in flight at the end may take to answer before they count as errors."""


@dataclass
class Tally:
    """What the run measured: latencies of counted answers, errors by reason."""

    measure_from: float
    stop_at: float
    max_requests: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def counted(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    @property
    def full(self) -> bool:
        return self.counted >= self.max_requests

    def record(self, began: float, done: float, failed: str | None) -> None:
        if began < self.measure_from or self.full:
            return
        if failed:
            self.errors[failed] += 1
        else:
            self.latencies_ms.append((done - began) * 1000)


class AnswerReader:
    """Accumulates one HTTP/1.1 response; knows when it is complete, its status, and whether the
    server closes the connection after it."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.status = 0
        self.expected: int | None = None  # header + body bytes, once the header has arrived
        self.until_close = False
        self.closes = False

    def feed(self, data: bytes) -> bool:
        """Adds ``data``; True once the whole answer is here (an empty ``data`` is the peer
        closing, which completes an answer that has no ``Content-Length``)."""
        if not data:
            if self.until_close:
                return True
            raise ConnectionError("server closed the connection mid-answer")
        self.buffer += data
        if self.expected is None and not self.until_close:
            self._read_header()
        return self.expected is not None and len(self.buffer) >= self.expected

    def _read_header(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise ConnectionError("answer header too long")
            return
        status_line, *lines = bytes(self.buffer[:end]).split(b"\r\n")
        self.status = int(status_line[9:12])
        fields = dict(_field(line) for line in lines)
        self.closes = fields.get(b"connection") == b"close" or status_line.startswith(b"HTTP/1.0")
        if b"content-length" in fields:
            self.expected = end + 4 + int(fields[b"content-length"])
        elif b"transfer-encoding" in fields:
            raise ConnectionError("chunked answers are not read by this load generator")
        else:
            self.until_close = self.closes = True


def _field(line: bytes) -> tuple[bytes, bytes]:
    name, _, value = line.partition(b":")
    return name.strip().lower(), value.strip().lower()


def raw_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A keep-alive HTTP/1.1 POST as it goes on the wire."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class _Client:
    """One keep-alive connection and the request it has in flight."""

    sock: socket.socket
    began: float = 0.0
    reader: AnswerReader = field(default_factory=AnswerReader)


def drive_http(host: str, port: int, wire: bytes, concurrency: int, tally: Tally) -> None:
    """Keeps ``concurrency`` requests ``wire`` in flight until ``tally.stop_at`` (or until it is
    full), then waits up to ``ANSWER_GRACE_S`` for those still out."""
    selector = selectors.DefaultSelector()
    clients = [_open(host, port) for _ in range(concurrency)]
    try:
        for client in clients:
            selector.register(client.sock, selectors.EVENT_READ, client)
            if not _send(client, wire):
                raise UsageError(f"{host}:{port} refused a request; expected a KServe v2 server")
        _loop(selector, host, port, wire, tally)
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()


def _loop(
    selector: selectors.BaseSelector, host: str, port: int, wire: bytes, tally: Tally
) -> None:
    give_up = tally.stop_at + ANSWER_GRACE_S
    while selector.get_map() and (now := time.perf_counter()) < give_up:
        sending = now < tally.stop_at and not tally.full
        timeout = (tally.stop_at if sending else give_up) - now
        for key, _ in selector.select(max(timeout, 0.0)):
            client: _Client = key.data
            failed, done = _receive(client)
            if done is None:
                continue
            tally.record(client.began, done, failed)
            if failed or client.reader.closes:
                selector.unregister(client.sock)
                client.sock.close()
                client = _open(host, port)
                selector.register(client.sock, selectors.EVENT_READ, client)
            if time.perf_counter() < tally.stop_at and not tally.full:
                client.reader = AnswerReader()
                if not _send(client, wire):
                    tally.record(client.began, time.perf_counter(), "send failed")
                    selector.unregister(client.sock)
                    client.sock.close()
            else:
                selector.unregister(client.sock)
                client.sock.close()
    for key in list(selector.get_map().values()):
        tally.record(key.data.began, time.perf_counter(), "no answer")


def _open(host: str, port: int) -> _Client:
    try:
        sock = socket.create_connection((host, port), timeout=30)
    except OSError as exc:
        raise UsageError(
            f"cannot connect to {host}:{port} ({exc}); expected a server listening there"
        ) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _Client(sock)


def _send(client: _Client, wire: bytes) -> bool:
    client.began = time.perf_counter()
    try:
        client.sock.sendall(wire)
    except OSError:
        return False
    return True


def _receive(client: _Client) -> tuple[str | None, float | None]:
    """(error or None, time answered) once the answer is complete; (None, None) before."""
    try:
        complete = client.reader.feed(client.sock.recv(RECV_BYTES))
    except (OSError, ValueError) as exc:
        return type(exc).__name__, time.perf_counter()
    if not complete:
        return None, None
    status = client.reader.status
    return (None if status == 200 else str(status)), time.perf_counter()
