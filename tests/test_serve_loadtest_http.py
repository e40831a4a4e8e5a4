"""``shipyard loadtest``'s one-thread HTTP driver: answers read in pieces, and servers that close
the connection after each answer, with their errors counted by status (the standard library's HTTP
server on 127.0.0.1); against `shipyard serve`: tests/test_serve_loadtest_protocols.py."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shipyard.serve.loadtest_http import AnswerReader, Tally, drive_http, raw_request


def test_an_answer_arriving_a_byte_at_a_time_is_read_whole():
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: x\r\nContent-Length: 5\r\n\r\nhello"
    reader = AnswerReader()
    done = [reader.feed(answer[i : i + 1]) for i in range(len(answer))]
    assert done == [False] * (len(answer) - 1) + [True]
    assert reader.status == 200 and not reader.closes


def test_an_answer_without_length_ends_when_the_server_closes():
    reader = AnswerReader()
    assert not reader.feed(b"HTTP/1.0 503 Busy\r\nContent-Type: text/plain\r\n\r\nbusy")
    assert reader.feed(b"") and reader.status == 503 and reader.closes


def test_a_connection_closed_mid_answer_is_an_error():
    reader = AnswerReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(ConnectionError):
        reader.feed(b"")


class _OneShot(BaseHTTPRequestHandler):
    """HTTP/1.0 (the default): the connection closes after every answer; every third is a 500."""

    served = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).served += 1
            status = 500 if self.served % 3 == 0 else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def one_shot_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OneShot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_closes_after_each_answer_is_reconnected_and_its_errors_counted(
    one_shot_server,
):
    wire = raw_request("127.0.0.1", one_shot_server, "/x", b"{}", {"Content-Type": "text/json"})
    tally = Tally(measure_from=0.0, stop_at=time.perf_counter() + 5.0, max_requests=60)
    drive_http("127.0.0.1", one_shot_server, wire, 4, tally)
    assert tally.counted == 60 and _OneShot.served >= 60
    assert set(tally.errors) == {"500"} and 15 <= tally.errors["500"] <= 25
