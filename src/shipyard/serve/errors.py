"""Errors a served request can end in, each with the HTTP status and gRPC code it maps to.

    ShipyardError
    └── ServeError                 status 500, the model failed while running a request
        ├── BadRequest             400, the request does not fit the model or the protocol
        ├── ModelNotFound          404, no model (or version) of that name is served
        ├── RequestTooLarge        413, the body or a declared tensor is over the size limit
        ├── Overloaded             503, the model's queue is full; retry later
        ├── NotReady               503, the server is shutting down
        └── RequestTimeout         504, the request waited longer than its timeout

Every message says what was wrong and what was expected; clients get it as ``{"error": "..."}``.
"""

from __future__ import annotations

from shipyard.errors import ShipyardError


class ServeError(ShipyardError):
    """A request failed; ``status`` is the HTTP status and ``grpc_code`` the gRPC status name."""

    status = 500
    grpc_code = "INTERNAL"


class BadRequest(ServeError):
    status = 400
    grpc_code = "INVALID_ARGUMENT"


class ModelNotFound(ServeError):
    status = 404
    grpc_code = "NOT_FOUND"


class RequestTooLarge(ServeError):
    status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class Overloaded(ServeError):
    status = 503
    grpc_code = "UNAVAILABLE"


class NotReady(ServeError):
    status = 503
    grpc_code = "UNAVAILABLE"


class RequestTimeout(ServeError):
    status = 504
    grpc_code = "DEADLINE_EXCEEDED"
