"""Inference POSTs answered on the HTTP connection itself, without an ASGI request cycle.

uvicorn turns every request into an ASGI scope, a request-response cycle with an ``asyncio.Event``,
a task through its exception wrapper and the proxy-headers middleware, and ``send`` messages whose
headers it checks and joins; for a small model that machinery is about a third of the event loop's
time per request. The connection protocol (:func:`shipyard.serve.connections.protocol_class`)
gives a ``POST …/infer`` a :class:`LeanCycle` instead: it reads what uvicorn's protocol reads of a
cycle (so keep-alive, pipelining, the connection limits and graceful shutdown stay uvicorn's), runs
:meth:`InferEndpoint.respond <shipyard.serve.http_infer.InferEndpoint.respond>` with the same
limits, errors, metrics and access log, and writes the status line, headers and body at once,
byte for byte what uvicorn writes for the ASGI path.

Anything unusual (a query string, percent-escapes, ``Expect: 100-continue``, an upgrade, a
connection over the concurrency limit) takes uvicorn's own path.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from shipyard.serve.accesslog import access_log_on, log_http_access
from shipyard.serve.http_infer import (
    FORWARDED_FOR,
    internal_error_body,
    match_infer_path,
    request_headers,
)


def lean_params(protocol: Any) -> dict[str, str] | None:
    """The path parameters when the request whose headers ``protocol`` (uvicorn's httptools
    protocol) just parsed can take the lean path, else None."""
    parser = protocol.parser
    if parser.get_method() != b"POST" or protocol.expect_100_continue or parser.should_upgrade():
        return None
    url = protocol.url
    if b"?" in url or b"%" in url or protocol.root_path:
        return None
    limit = protocol.limit_concurrency
    if limit is not None and (len(protocol.connections) >= limit or len(protocol.tasks) >= limit):
        return None  # uvicorn's path answers it 503
    try:
        return match_infer_path(url.decode("ascii"))
    except UnicodeDecodeError:
        return None


class _Wakeup:
    """The ``message_event`` uvicorn's protocol sets: wakes the endpoint waiting for the body."""

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        self.waiter: asyncio.Future | None = None

    def set(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class LeanCycle:
    """One inference request on a connection: the attributes uvicorn's protocol reads of its
    request cycle, the body as it arrives, and ``run_asgi``, which answers the request."""

    def __init__(self, protocol: Any, endpoint: Any, params: dict[str, str]) -> None:
        self.protocol, self.endpoint, self.params = protocol, endpoint, params
        self.raw_headers: list[tuple[bytes, bytes]] = protocol.headers
        self.path = protocol.url.decode("ascii")
        parser = protocol.parser
        self.keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.received = 0
        self.more_body = True
        self.message_event = _Wakeup()
        self.response_complete = False
        self.disconnected = False

    def add_body(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        self.received += len(data)
        if self.buffered > HIGH_WATER_LIMIT:  # stop reading until the endpoint takes them
            self.protocol.flow.pause_reading()
        self.message_event.set()

    def end_body(self) -> None:
        self.more_body = False
        self.message_event.set()

    async def receive(self) -> dict:
        """ASGI ``receive``: the body bytes arrived so far, waiting for some when there are none."""
        if not self.chunks and self.more_body and not self.disconnected:
            self.protocol.flow.resume_reading()
            self.message_event.waiter = self.protocol.loop.create_future()
            await self.message_event.waiter
        if self.disconnected:
            return {"type": "http.disconnect"}
        chunks, self.chunks, self.buffered = self.chunks, [], 0
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def run_asgi(self, app: Any) -> None:
        """Answer the request (``app`` is uvicorn's and goes unused: the endpoint answers)."""
        started = time.perf_counter()
        headers = request_headers(self.raw_headers)
        try:
            body, raw_headers, status = await self.endpoint.respond(
                self.params, headers, self.receive, not self.more_body, started
            )
        except Exception as exc:  # noqa: BLE001 - as uvicorn's cycle answers an app that raised
            (body, raw_headers), status = internal_error_body(exc), 500
        if self.disconnected:
            return
        self._write(status, raw_headers, body)
        self.response_complete = True
        if not self.keep_alive:
            self.protocol.transport.close()
        self.protocol.on_response_complete()
        if access_log_on():
            client = self.protocol.client
            if FORWARDED_FOR in headers and self.protocol.config.proxy_headers:
                client = await self._forwarded_client()
            scope = {"method": "POST", "path": self.path, "client": client}
            log_http_access(
                scope, started, status=status, bytes_out=len(body), bytes_in=self.received
            )

    def _write(self, status: int, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        lines = [STATUS_LINE[status]]
        for name, value in (*self.protocol.server_state.default_headers, *raw_headers):
            lines += [name, b": ", value, b"\r\n"]
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        self.protocol.transport.write_response(b"".join(lines), body)

    async def _forwarded_client(self) -> Any:
        """The client's address as the proxy-headers middleware would give it to the ASGI app."""
        config = self.protocol.config
        client = self.protocol.client
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        async def nothing(scope: dict, receive: Any, send: Any) -> None:
            return None

        scope = {"type": "http", "client": client, "scheme": "http", "headers": self.raw_headers}
        await ProxyHeadersMiddleware(nothing, config.forwarded_allow_ips)(scope, None, None)
        return scope["client"]
