"""KServe v2 HTTP/REST front end (Starlette), with Triton's binary tensor data extension.

Routes: ``/v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{m}[/versions/{v}]``
(metadata), ``…/config`` (Triton's model configuration), ``…/ready``, ``…/infer``, and ``/metrics``
for Prometheus. Every failure is a JSON body ``{"error": "..."}`` with the status of its
:mod:`shipyard.serve.errors` class.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.serve import tensors
from shipyard.serve.accesslog import AccessLogMiddleware
from shipyard.serve.config import config_json
from shipyard.serve.errors import BadRequest, NotReady, RequestTooLarge, ServeError
from shipyard.serve.limits import JSON_GROWTH, BodyTimeout, Holding, off_loop
from shipyard.serve.repository import ModelFace, ServedModel
from shipyard.serve.state import ServerState
from shipyard.serve.stats import stats_routes

HEADER_LENGTH = "inference-header-content-length"


def make_app(state: ServerState) -> Any:
    """The ASGI application serving ``state.repository``."""

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": state.ready}, status_code=200 if state.ready else 503)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(state.server_metadata())

    async def model_metadata(request: Request) -> Response:
        return await _guard(lambda: JSONResponse(_model(state, request).metadata()))

    async def model_config(request: Request) -> Response:
        return await _guard(lambda: JSONResponse(config_json(_model(state, request))))

    async def model_ready(request: Request) -> Response:
        return await _guard(
            lambda: JSONResponse(
                {"name": _model(state, request).name, "ready": state.ready},
                status_code=200 if state.ready else 503,
            )
        )

    async def infer(request: Request) -> Response:
        return await _infer(state, request)

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.render(), media_type=state.metrics.content_type)

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/metrics", metrics),
    ]
    routes += stats_routes(
        state
    )  # before /v2/models/{model}, which would take "stats" for a model name
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        routes += [
            Route(prefix, model_metadata),
            Route(prefix + "/config", model_config),
            Route(prefix + "/ready", model_ready),
            Route(prefix + "/infer", infer, methods=["POST"]),
        ]
    from shipyard.serve.tfserving_rest import routes as tfserving_routes

    routes += tfserving_routes(state)  # TensorFlow Serving's /v1/models/… on the same port
    return AccessLogMiddleware(Starlette(routes=routes))


async def _guard(make: Any) -> Response:
    try:
        return make()
    except ServeError as exc:
        return _error(exc)


def _error(exc: ServeError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _model(state: ServerState, request: Request) -> ServedModel:
    return state.repository.get(request.path_params["model"], request.path_params.get("version"))


async def _infer(state: ServerState, request: Request) -> Response:
    started = time.perf_counter()
    name = request.path_params["model"]
    try:
        model = _model(state, request)
        async with state.budget.hold() as holding:
            body = await read_body(
                request, state.options.max_request_bytes, holding, state.options.body_timeout_s
            )
            holding.add(JSON_GROWTH * json_size(body, request.headers.get(HEADER_LENGTH)))
            header, inputs, outputs = await off_loop(
                decode_checked,
                model,
                body,
                request.headers.get(HEADER_LENGTH),
                state.options.max_request_bytes,
            )
            del body
            results = await model.infer(inputs, client_timeout_s(header))
            response = await off_loop(encode_response, model, header, results, outputs)
        status = 200
    except ServeError as exc:
        response, status = _error(exc), exc.status
    except asyncio.CancelledError:
        if state.ready:
            raise
        # shutdown cancelled a request still arriving after the grace period: answer it, quietly
        response, status = (
            _error(NotReady("the server is shutting down; retry on another instance")),
            503,
        )
    except Exception as exc:  # noqa: BLE001 - never let one request take the server down
        response, status = _error(ServeError(f"internal error: {type(exc).__name__}: {exc}")), 500
    if name in state.repository.models:  # unknown names stay out of the labels: bounded cardinality
        state.metrics.observe_request(name, "http", time.perf_counter() - started, status)
    return response


def decode_checked(
    model: ModelFace, body: bytes, header_length: str | None, max_bytes: int
) -> tuple[dict[str, Any], dict[str, np.ndarray], list[dict[str, Any]] | None]:
    """Parse, decode and check one request body (run it off the event loop: see
    ``limits.off_loop``)."""
    header, binary = split_body(body, header_length)
    inputs, outputs = decode_request(model, header, binary, max_bytes)
    model.check_request(inputs)  # content checks before batching, so a bad request fails alone
    return header, inputs, outputs


def json_size(body: bytes, header_length: str | None) -> int:
    """How many bytes of ``body`` are JSON (all of it without the binary extension's header
    length)."""
    if header_length is not None and header_length.isdigit():
        return min(int(header_length), len(body))
    return len(body)


def client_timeout_s(header: dict[str, Any]) -> float | None:
    """The ``timeout`` request parameter (microseconds, as tritonclient sends it) in seconds."""
    value = _parameters(header, "request").get("timeout")
    return (
        value / 1e6
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        else None
    )


async def read_body(
    request: Request, limit: int, holding: Holding | None = None, deadline_s: float | None = None
) -> bytes:
    """The request body, at most ``limit`` bytes (413), within ``deadline_s`` (408); bytes count on
    ``holding``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestTooLarge(f"request body is {length} bytes; expected at most {limit} bytes")
    if holding is not None and length is not None and length.isdigit():
        holding.add(
            int(length)
        )  # reserved before reading: over budget is 503 before the body arrives
        holding_chunks = None
    else:
        holding_chunks = holding
    try:
        body = await asyncio.wait_for(_read_chunks(request, limit, holding_chunks), deadline_s)
    except asyncio.TimeoutError:
        raise BodyTimeout(
            f"request body took over {deadline_s:g} s to arrive; expected the whole body "
            f"within the server's body timeout"
        ) from None
    except ClientDisconnect:
        raise BadRequest("the client disconnected before sending its whole body") from None
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "identity":
        return body
    data = _decompress(body, encoding, limit)
    if holding is not None:
        holding.add(len(data))
    return data


async def _read_chunks(request: Request, limit: int, holding: Holding | None) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(
                f"request body is over {limit} bytes; expected at most {limit} bytes"
            )
        if holding is not None:
            holding.add(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(
            f"content-encoding {encoding!r} is not supported; expected gzip, deflate or none"
        )
    inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"request body is not valid {encoding} data: {exc}") from exc
    if len(data) > limit:
        raise RequestTooLarge(
            f"request body inflates to over {limit} bytes; expected at most {limit}"
        )
    return data


def split_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], memoryview]:
    size = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > size:
            raise BadRequest(
                f"Inference-Header-Content-Length is {header_length!r}; expected a byte count "
                f"of at most the body's {size} bytes"
            )
        size = int(header_length)
    try:
        header = json.loads(body[:size])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(
            f"request JSON is malformed: {exc}; expected a KServe v2 inference request"
        ) from exc
    except RecursionError:
        raise BadRequest(
            "request JSON is nested too deeply; expected a KServe v2 inference request"
        ) from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise BadRequest(
            'request JSON has no \'inputs\' list; expected {"inputs": [{"name", "datatype", '
            '"shape", "data"}...]}'
        )
    _parameters(header, "request")
    return header, memoryview(body)[size:]


def _parameters(entry: dict[str, Any], what: str) -> dict[str, Any]:
    """An entry's ``parameters`` object ({} when absent); anything but an object is a client
    error."""
    params = entry.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest(
            f"{what} 'parameters' is {type(params).__name__} {str(params)[:40]!r}; expected a JSON "
            f'object such as {{"binary_data_output": true}}'
        )
    return params


def decode_request(
    model: ModelFace, header: dict[str, Any], binary: memoryview, max_bytes: int
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]] | None]:
    entries = header["inputs"]
    if not all(isinstance(e, dict) for e in entries):
        raise BadRequest(
            "request 'inputs' holds a non-object; expected objects with name, datatype, shape"
        )
    model.check_input_names([e.get("name") for e in entries])
    inputs, offset = {}, 0
    for entry in entries:
        spec = model.input_spec(entry["name"])
        shape = tensors.check_header(spec, entry.get("datatype"), entry.get("shape"), max_bytes)
        model.check_batch_dim(spec, shape)
        size = _parameters(entry, f"input {spec.name!r}").get("binary_data_size")
        if size is None:
            inputs[spec.name] = tensors.from_json_data(spec, shape, entry.get("data"))
            continue
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or offset + size > len(binary)
        ):
            raise BadRequest(
                f"input {spec.name!r} declares binary_data_size {size!r}; expected a byte count "
                f"within the {len(binary) - offset} binary bytes left in the body"
            )
        inputs[spec.name] = tensors.from_raw(spec, shape, binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise BadRequest(
            f"request body has {len(binary)} bytes of binary data after the JSON header; "
            f"expected {offset} as the inputs' binary_data_size declare"
        )
    outputs = header.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise BadRequest(
                "request 'outputs' is not a list of objects; expected [{\"name\": ...}]"
            )
        model.check_output_names([o.get("name") for o in outputs])
        for entry in outputs:
            _parameters(entry, f"output {entry.get('name')!r}")
    return inputs, outputs


def encode_response(
    model: ModelFace,
    header: dict[str, Any],
    results: dict[str, np.ndarray],
    outputs: list[dict[str, Any]] | None,
) -> Response:
    all_binary = bool(_parameters(header, "request").get("binary_data_output", False))
    wanted = outputs if outputs is not None else [{"name": n} for n in model.signature.output_names]
    entries, blobs = [], []
    for request in wanted:
        spec = model.output_spec(request["name"])
        array = results[spec.name]
        entry: dict[str, Any] = {
            "name": spec.name,
            "datatype": spec.datatype,
            "shape": list(array.shape),
        }
        if _parameters(request, "output").get("binary_data", all_binary):
            blob = tensors.to_raw(array, spec.datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = tensors.to_json_data(array, spec.datatype)
        entries.append(entry)
    body: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": entries,
    }
    if "id" in header:
        body["id"] = header["id"]
    text = json.dumps(body).encode()
    if not blobs:
        return Response(text, media_type="application/json")
    return Response(
        b"".join([text, *blobs]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(text))},
    )
