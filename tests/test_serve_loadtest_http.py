"""``shipyard loadtest``'s one-thread HTTP driver: answers read in pieces, servers that close the
connection after each answer, errors counted by status, and its bounds, against real servers on
127.0.0.1 (the standard library's HTTP server and a real `shipyard serve`)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from serve_process import start_serve

from shipyard.backends.fake import write_fake_package
from shipyard.serve.loadtest import LoadSpec, run_loadtest
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


@pytest.fixture
def fast_fake(tmp_path):
    folder = write_fake_package(tmp_path / "fast", "fast")
    served = start_serve([folder], "--instances", "1", "--no-access-log")
    try:
        yield served
    finally:
        served.stop()


def test_loadtest_answers_a_real_server_and_counts_unknown_models_by_status(fast_fake):
    url = f"http://127.0.0.1:{fast_fake.http_port}"
    good = run_loadtest(LoadSpec(url, "fast", concurrency=8, duration_s=1, warmup_s=0.2))
    assert good.requests > 50 and not good.errors and len(good.latencies_ms) == good.requests
    x = {"x": np.ones((1, 4), np.float32)}
    wrong = run_loadtest(LoadSpec(url, "nope", concurrency=2, duration_s=0.5, warmup_s=0, inputs=x))
    assert wrong.requests == 0 and set(wrong.errors) == {"404"} and wrong.errors["404"] > 5


def test_loadtest_stops_at_its_request_count(fast_fake):
    url = f"http://127.0.0.1:{fast_fake.http_port}"
    result = run_loadtest(
        LoadSpec(url, "fast", concurrency=4, duration_s=30, max_requests=25, warmup_s=0)
    )
    assert result.requests == 25 and result.seconds < 10
