"""TensorFlow Serving's REST API on the HTTP port, beside the KServe v2 routes.

Routes: ``GET /v1/models/{m}[/versions/{v}]`` (version status), ``GET …/metadata`` (the signature),
``POST …:predict`` (row or columnar JSON, see :mod:`shipyard.serve.tfserving_json`). Requests
go through the same size limit, batcher, timeout and metrics as ``/v2/…/infer``; every failure is
``{"error": "..."}`` as TF Serving answers, with the status of its :mod:`shipyard.serve.errors`
class.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.serve import tfserving
from shipyard.serve.errors import BadRequest, ModelNotFound, ServeError
from shipyard.serve.repository import ServedModel
from shipyard.serve.state import ServerState
from shipyard.serve.tfserving_json import parse_predict, predict_response

PROTOCOL = "tfserving_http"


def routes(state: ServerState) -> list[Route]:
    """The ``/v1/models/…`` routes serving ``state.repository``."""

    async def status(request: Request) -> Response:
        return _guard(lambda: _status(state, request))

    async def metadata(request: Request) -> Response:
        return _guard(lambda: JSONResponse(tfserving.metadata(_model(state, request))))

    async def method(request: Request) -> Response:
        return await _method(state, request)

    table = []
    for prefix in ("/v1/models/{model}", "/v1/models/{model}/versions/{version}"):
        table += [
            Route(prefix, status, methods=["GET"]),
            Route(prefix + "/metadata", metadata, methods=["GET"]),
            Route(prefix + ":{method}", method, methods=["POST"]),
        ]
    return table + [
        Route("/v1/{rest:path}", _unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    ]


async def _unknown(request: Request) -> Response:
    return _error(
        ModelNotFound(
            f"{request.method} {request.url.path} is not a TensorFlow Serving route here; "
            f"expected GET /v1/models/{{m}}[/versions/{{v}}][/metadata] or POST "
            f"/v1/models/{{m}}[/versions/{{v}}]:predict (version labels are not served)"
        )
    )


def _guard(make: Callable[[], Response]) -> Response:
    try:
        return make()
    except ServeError as exc:
        return _error(exc)


def _error(exc: ServeError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _model(state: ServerState, request: Request) -> ServedModel:
    return state.repository.get(request.path_params["model"], request.path_params.get("version"))


def _status(state: ServerState, request: Request) -> Response:
    models = tfserving.status_models(
        state.repository, request.path_params["model"], request.path_params.get("version")
    )
    return JSONResponse(
        {"model_version_status": [tfserving.version_status(m, state.ready) for m in models]}
    )


async def _method(state: ServerState, request: Request) -> Response:
    started = time.perf_counter()
    name = request.path_params["model"]
    try:
        response, status = await _predict(state, request), 200
    except ServeError as exc:
        response, status = _error(exc), exc.status
    except Exception as exc:  # noqa: BLE001 - never let one request take the server down
        response, status = _error(ServeError(f"internal error: {type(exc).__name__}: {exc}")), 500
    if name in state.repository.models:  # unknown names stay out of the labels: bounded cardinality
        state.metrics.observe_request(name, PROTOCOL, time.perf_counter() - started, status)
    return response


async def _predict(state: ServerState, request: Request) -> Response:
    from shipyard.serve.http import read_body
    from shipyard.serve.limits import JSON_GROWTH, off_loop

    verb = request.path_params["method"]
    if verb != "predict":
        raise BadRequest(
            f"':{verb}' is not served; expected ':predict' (packages have one predict signature, "
            f"no classify or regress)"
        )
    model = _model(state, request)
    async with (
        state.budget.hold() as holding
    ):  # the same bounds as the KServe endpoints (serve/limits.py)
        body = await read_body(
            request, state.options.max_request_bytes, holding, state.options.body_timeout_s
        )
        holding.add(JSON_GROWTH * len(body))
        decoded = await off_loop(_parse_checked, model, body, state.options.max_request_bytes)
        del body
        results = await model.infer(decoded.inputs)
        return await off_loop(lambda: _json(predict_response(model, results, decoded.row)))


def _parse_checked(model: ServedModel, body: bytes, max_bytes: int) -> Any:
    decoded = parse_predict(model, body, max_bytes)
    model.check_request(
        decoded.inputs
    )  # content checks before batching, so a bad request fails alone
    return decoded


def _json(body: Any) -> Response:
    # NaN and Infinity go out as bare words, as TF Serving writes them.
    return Response(json.dumps(body).encode(), media_type="application/json")
