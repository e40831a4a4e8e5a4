"""The KServe v2 inference endpoint as a raw ASGI app, in front of the Starlette app.

``POST /v2/models/{m}[/versions/{v}]/infer`` is the hot path: the connection protocol usually
answers it without ASGI (:mod:`shipyard.serve.http_lean`, through :meth:`InferEndpoint.respond`);
what reaches the app, :class:`InferFirst` sends straight to :class:`InferEndpoint`, past
Starlette's routing, request objects and middleware, and every other request (and any other
method on that path) to the Starlette app. The endpoint keeps the
semantics the Starlette route had: the body limits of :mod:`shipyard.serve.limits`, the
``{"error": ...}`` JSON bodies with the status of their :mod:`shipyard.serve.errors` class, the
metrics, the Triton statistics and the access log line.

Example::

    >>> app = InferFirst(InferEndpoint(state), starlette_app)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from shipyard.serve import http as kserve
from shipyard.serve.accesslog import access_log_on, log_http_access
from shipyard.serve.connections import BODY_ARRIVED
from shipyard.serve.errors import NotReady, ServeError
from shipyard.serve.limits import JSON_GROWTH, inline, off_loop
from shipyard.serve.state import ServerState


def match_infer_path(path: str) -> dict[str, str] | None:
    """The path parameters of ``/v2/models/{model}[/versions/{version}]/infer`` (what Starlette's
    routes match: non-empty segments), or None for any other path; split by hand, several times
    cheaper than a regular expression."""
    if not path.endswith("/infer") or not path.startswith("/v2/models/"):
        return None
    parts = path.split("/")  # "", "v2", "models", model, [versions, version,] "infer"
    if len(parts) == 5 and parts[3]:
        return {"model": parts[3]}
    if len(parts) == 7 and parts[3] and parts[4] == "versions" and parts[5]:
        return {"model": parts[3], "version": parts[5]}
    return None


class InferFirst:
    """ASGI app: inference POSTs to ``endpoint``, everything else to ``app``."""

    def __init__(self, endpoint: Any, app: Any) -> None:
        self.endpoint, self.app = endpoint, app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            params = match_infer_path(scope["path"])
            if params is not None:
                scope["path_params"] = params  # as Starlette's router sets it, in place
                await self.endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


class InferEndpoint:
    """ASGI app answering one inference request (``scope["path_params"]`` names the model)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        logged = access_log_on()
        received = [0]  # body bytes, for the access log
        if logged:
            inner = receive

            async def receive() -> dict:
                message = await inner()
                received[0] += len(message.get("body", b""))
                return message

        body, raw_headers, status = await self.respond(
            scope["path_params"],
            request_headers(scope["headers"]),
            receive,
            BODY_ARRIVED in scope,
            started,
        )
        try:
            await send({"type": "http.response.start", "status": status, "headers": raw_headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            if logged:
                log_http_access(
                    scope, started, status=status, bytes_out=len(body), bytes_in=received[0]
                )

    async def respond(
        self,
        params: dict[str, str],
        headers: dict[str, str],
        receive: Any,
        arrived: bool,
        started: float,
    ) -> tuple[bytes, list[tuple[bytes, bytes]], int]:
        """(body, raw headers, status) of the answer to one request, counted in the metrics;
        ``headers`` are :func:`request_headers`, ``receive`` is ASGI's, ``arrived`` says the
        whole body is in, ``started`` is the request's ``perf_counter`` time."""
        body, raw_headers, status = await self._answer(params, headers, receive, arrived)
        name = params["model"]
        if name in self.state.repository.models:  # unknown names stay out of the labels
            self.state.metrics.observe_request(name, "http", time.perf_counter() - started, status)
        return body, raw_headers, status

    async def _answer(
        self, params: dict[str, str], headers: dict[str, str], receive: Any, arrived: bool
    ) -> tuple[bytes, list[tuple[bytes, bytes]], int]:
        """(body, raw headers, status) of the response to one request; never raises but
        cancellation."""
        state = self.state
        try:
            model = state.repository.get(params["model"], params.get("version"))
            length = headers.get(kserve.HEADER_LENGTH)
            limit = state.options.max_request_bytes
            async with state.budget.hold() as holding:
                body = await kserve.receive_body(
                    receive, headers.get, limit, holding, state.options.body_timeout_s, arrived
                )
                holding.add(JSON_GROWTH * kserve.json_size(body, length))
                if inline(len(body)):  # as off_loop would, without its coroutine
                    header, inputs, outputs = kserve.decode_checked(model, body, length, limit)
                else:
                    header, inputs, outputs = await off_loop(
                        kserve.decode_checked, model, body, length, limit
                    )
                del body
                results = await model.infer(inputs, kserve.client_timeout_s(header))
                size = sum(getattr(a, "nbytes", 0) for a in results.values())
                if inline(size):
                    answer = kserve.encode_body(model, header, results, outputs)
                else:
                    answer = await off_loop(kserve.encode_body, model, header, results, outputs)
            return answer.body, answer.raw_headers(), 200
        except ServeError as exc:
            return *error_body(exc), exc.status
        except asyncio.CancelledError:
            if state.ready:
                raise
            # shutdown cancelled a request still arriving after the grace period: answer it, quietly
            return *error_body(
                NotReady("the server is shutting down; retry on another instance")
            ), 503
        except Exception as exc:  # noqa: BLE001 - never let one request take the server down
            return *internal_error_body(exc), 500


FORWARDED_FOR = "x-forwarded-for"
_WANTED = {
    b"content-length",
    b"content-encoding",
    kserve.HEADER_LENGTH.encode(),
    FORWARDED_FOR.encode(),  # the lean path's access log asks the proxy middleware only then
}


def request_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers the endpoint reads, by lower-case name (the server lower-cases names;
    the last of repeated headers wins, as in a dict of all of them)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k in _WANTED}


def internal_error_body(exc: Exception) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The 500 answer's ``{"error": ...}`` for an exception no error class describes."""
    return error_body(ServeError(f"internal error: {type(exc).__name__}: {exc}"))


def error_body(exc: ServeError) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """``{"error": ...}`` and its headers, byte for byte as Starlette's ``JSONResponse`` writes
    them."""
    body = json.dumps(
        {"error": str(exc)}, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")
    return body, [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
    ]
