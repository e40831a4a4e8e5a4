"""Structured access logs: one JSON line per request on the ``shipyard.access`` logger."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

LOGGER_NAME = "shipyard.access"


def print_access_log() -> None:
    """Print the access lines on standard error, as ``shipyard serve`` does by default."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)


def access_log_on() -> bool:
    """Whether access lines are logged (check before gathering a line's fields)."""
    return _logger().isEnabledFor(logging.INFO)


def _logger() -> logging.Logger:
    # looked up per call (Ray, for one, rebuilds the logger tree), but without getLogger's lock
    logger = logging.Logger.manager.loggerDict.get(LOGGER_NAME)
    return logger if isinstance(logger, logging.Logger) else logging.getLogger(LOGGER_NAME)


def log_access(**fields: Any) -> None:
    """Log one request; fields are e.g. protocol, method, path, model, status, ms, bytes_in."""
    logger = _logger()
    if logger.isEnabledFor(logging.INFO):
        logger.info(json.dumps({"ts": round(time.time(), 3), **fields}, default=str))


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
