"""Connection-level bounds for the HTTP front end: a connection limit and a header read deadline.

uvicorn closes a kept-alive connection only after a response, and never one that connects and
sends nothing or sends its headers a byte at a time; each such connection holds memory and a
file descriptor forever. This protocol (uvicorn's own, with two additions) closes a connection
whose request headers are not complete ``header_timeout_s`` after it connected or after its last
response, and drops connections beyond twice the limit at once (up to the limit uvicorn answers
extra requests with 503 itself, ``limit_concurrency``, here with the server's JSON error body). The
body has its own deadline, enforced where it is read (:func:`shipyard.serve.http.receive_body`).

uvicorn writes a response's status line and headers, then its body, as two socket writes: two
syscalls and two TCP segments, and a client that wakes up for the head and again for the body. The
protocol's transport here joins the writes of one response and sends them at once when the response
is complete (or at the end of the event-loop step, for anything else).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 256
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0


BODY_ARRIVED = "shipyard.body_arrived"
"""Scope key the protocol sets once a request's whole body is in: reading it cannot stall, so the
endpoint needs no body deadline (:func:`shipyard.serve.http.receive_body`)."""


def over_the_limit(max_connections: int) -> Any:
    """The ASGI app that answers a request beyond the connection limit: 503 with the server's
    ``{"error": ...}`` JSON, and the connection closed, as uvicorn closes it."""
    from shipyard.serve.errors import Overloaded
    from shipyard.serve.http_infer import error_body

    body, headers = error_body(
        Overloaded(
            f"the server has {max_connections} connections or requests open, its limit "
            f"(--max-connections); retry later or on another instance"
        )
    )

    async def answer(scope: dict, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [*headers, (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return answer


def protocol_class(limits: ConnectionLimits, endpoint: Any = None) -> type:
    """uvicorn's HTTP protocol class with the header deadline and the hard connection cap; with an
    ``endpoint`` (:class:`~shipyard.serve.http_infer.InferEndpoint`), inference POSTs take the lean
    path of :mod:`shipyard.serve.http_lean`."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.http.flow_control import service_unavailable

    if AutoHTTPProtocol.__name__ != "HttpToolsProtocol":
        endpoint = None  # h11 (no httptools installed) parses differently: uvicorn's path only
    else:
        from shipyard.serve.http_lean import LeanCycle, lean_params

    # After a response uvicorn's keep-alive timer closes a silent connection; when that comes first
    # the header deadline is armed only once a request's first bytes arrive (no timer per request).
    eager = limits.header_timeout_s < limits.keep_alive_s

    class DeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None
        _waiting_after: Any = None
        _idle_since = 0.0  # loop time of the connection or of its last response

        def on_message_begin(self) -> None:
            if endpoint is None:
                super().on_message_begin()
                return
            self.url, self.expect_100_continue, self.headers = b"", False, []
            self.scope = None  # the lean path needs no ASGI scope: built only for uvicorn's

        def on_headers_complete(self) -> None:
            params = None if endpoint is None else lean_params(self)
            if params is None:
                if self.scope is None:
                    self._begin_scope()
                super().on_headers_complete()
                return
            existing, self.cycle = self.cycle, LeanCycle(self, endpoint, params)
            if existing is None or existing.response_complete:
                self._start_asgi_task(self.cycle, None)
            else:  # pipelined behind a request still being answered, as uvicorn queues it
                self.flow.pause_reading()
                self.pipeline.appendleft((self.cycle, None))

        def _begin_scope(self) -> None:
            """uvicorn's scope of the request whose URL and headers are parsed."""
            url, expect, headers = self.url, self.expect_100_continue, self.headers
            super().on_message_begin()
            self.url, self.expect_100_continue, self.headers = url, expect, headers
            self.scope["headers"] = headers

        def on_body(self, body: bytes) -> None:
            if endpoint is not None and isinstance(self.cycle, LeanCycle):
                if not self.cycle.response_complete:
                    self.cycle.add_body(body)
                return
            super().on_body(body)

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            if app is service_unavailable:  # uvicorn's own plain-text answer at the limit
                app = over_the_limit(limits.max_connections)
            super()._start_asgi_task(cycle, app)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(JoinedWrites(transport, self.loop))
            if len(self.connections) > 2 * limits.max_connections:
                transport.close()
                return
            self._idle_since = self.loop.time()
            self._deadline = self.loop.call_later(limits.header_timeout_s, self._expire)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not self._waiting_after:
                if self._deadline is not None:  # a new request's headers are in: the body
                    self._deadline.cancel()  # deadline takes over
                    self._deadline = None
            elif self._deadline is None:  # headers begun after a response: the deadline counts
                self._deadline = self.loop.call_at(  # from that response
                    self._idle_since + limits.header_timeout_s, self._expire
                )

        def on_message_complete(self) -> None:
            if endpoint is not None and isinstance(self.cycle, LeanCycle):
                if not self.cycle.response_complete:
                    self.cycle.end_body()
                return
            super().on_message_complete()
            if self.cycle is not None and not self.cycle.more_body:
                self.cycle.scope[BODY_ARRIVED] = True

        def on_response_complete(self) -> None:
            self.transport.flush()
            super().on_response_complete()
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a pipelined request is already being answered
            self._waiting_after = self.cycle
            self._idle_since = self.loop.time()
            if eager:
                self._deadline = self.loop.call_later(limits.header_timeout_s, self._expire)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _expire(self) -> None:
            if self.cycle is self._waiting_after and not self.transport.is_closing():
                self.transport.close()

    return DeadlineProtocol


JOIN_LIMIT = 64 * 1024
"""Writes are joined into one buffer up to this size; larger bodies go out as they are (no copy)."""


class JoinedWrites:
    """A transport whose writes wait for ``flush()`` (or the end of the loop step), then go out as
    one write; everything else is the wrapped transport's."""

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)

    def flush(self) -> None:
        if not self._pending:
            return
        pending, size = self._pending, self._size
        self._pending, self._size = [], 0
        if self._transport.is_closing():  # the client is gone: nobody to send the bytes to
            return
        if size <= JOIN_LIMIT:
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        else:
            for data in pending:
                self._transport.write(data)

    def write_response(self, head: bytes, body: bytes) -> None:
        """A whole response at once, after anything still pending."""
        self.flush()
        if self._transport.is_closing():
            return
        if len(head) + len(body) <= JOIN_LIMIT:
            self._transport.write(head + body)
        else:
            self._transport.write(head)
            self._transport.write(body)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:  # asked several times per request: not through __getattr__
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
