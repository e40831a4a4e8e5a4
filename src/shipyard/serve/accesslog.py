"""Structured access logs: one JSON line per request on the ``shipyard.access`` logger.

``shipyard serve`` prints the lines on standard error through :class:`LinePrinter`, past the
logging machinery, while no handler is attached to the logger: a ``logging`` record, its caller
lookup and a flushed write per request cost about 20 µs of the event loop's time, a sixth of what
a small model's request costs in all.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

LOGGER_NAME = "shipyard.access"
FLUSH_EVERY_S = 0.2
PIPE_BUF = 4096
"""Lines go out in writes of at most this many bytes, each of whole lines: POSIX keeps such a
write to a pipe in one piece, so the lines of several ``--workers`` sharing one stderr never mix."""


class LinePrinter:
    """Lines gathered in memory and written to ``stream`` every ``FLUSH_EVERY_S`` by a daemon
    thread, and at exit; a process killed outright loses at most that long's lines."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="access-log", daemon=True).start()
        atexit.register(self.flush)

    def add(self, line: str) -> None:
        self._lines.append(line)  # one bytecode under the GIL: no lock on the request path

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            if not lines:
                return
            try:
                self._stream.flush()  # what went before through the stream's own buffer
                fd = self._stream.fileno()
            except (OSError, ValueError):  # no file descriptor (a test's capture), or closed
                self._write_text(lines)
                return
            try:
                for chunk in _whole_line_chunks(lines):
                    while chunk:
                        chunk = chunk[os.write(fd, chunk) :]
            except OSError:  # stderr went away: nowhere left to log to
                pass

    def _write_text(self, lines: list[str]) -> None:
        try:
            self._stream.write("".join(line + "\n" for line in lines))
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed: nowhere left to log to
            pass

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_S)
            self.flush()


def _whole_line_chunks(lines: list[str]) -> list[bytes]:
    chunks, current, size = [], [], 0
    for line in lines:
        data = (line + "\n").encode()
        if current and size + len(data) > PIPE_BUF:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(data)
        size += len(data)
    if current:
        chunks.append(b"".join(current))
    return chunks


_printer: LinePrinter | None = None


def print_access_log() -> None:
    """Print the access lines on standard error, as ``shipyard serve`` does by default."""
    global _printer
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)
    if _printer is None:
        _printer = LinePrinter(sys.stderr)


def access_log_on() -> bool:
    """Whether access lines are logged (check before gathering a line's fields)."""
    return _logger().isEnabledFor(logging.INFO)


def _logger() -> logging.Logger:
    # looked up per call (Ray, for one, rebuilds the logger tree), but without getLogger's lock
    logger = logging.Logger.manager.loggerDict.get(LOGGER_NAME)
    return logger if isinstance(logger, logging.Logger) else logging.getLogger(LOGGER_NAME)


def log_access(**fields: Any) -> None:
    """Log one request; fields are e.g. protocol, method, path, model, status, ms, bytes_in.
    Under ``print_access_log`` the printer takes the line unless the logger has handlers of its
    own (then they do, as without it)."""
    logger = _logger()
    if not logger.isEnabledFor(logging.INFO):
        return
    if _printer is not None and not logger.handlers:
        _printer.add(_line(fields))
    else:
        logger.info(_line(fields))


_ENCODER = json.JSONEncoder(default=str)  # json.dumps(default=...) builds one per call


def _line(fields: dict[str, Any]) -> str:
    return _ENCODER.encode({"ts": round(time.time(), 3), **fields})


def log_http_access(scope: dict, started: float, **fields: Any) -> None:
    """Log one HTTP request from its ASGI ``scope``; ``started`` is its ``perf_counter`` time and
    ``fields`` are status, bytes_out and bytes_in."""
    client = scope.get("client") or ("", 0)
    log_access(
        protocol="http",
        method=scope["method"],
        path=scope["path"],
        client=client[0],
        ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )


class AccessLogMiddleware:
    """ASGI middleware logging method, path, status, duration and body sizes of HTTP requests."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 500, "bytes_out": 0, "bytes_in": 0}

        async def counting_receive() -> dict:
            message = await receive()
            seen["bytes_in"] += len(message.get("body", b""))
            return message

        async def capturing_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes_out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, capturing_send)
        finally:
            log_http_access(scope, started, **seen)
