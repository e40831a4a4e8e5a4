"""KServe v2 HTTP/REST front end (Starlette), with Triton's binary tensor data extension.

Routes: ``/v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{m}[/versions/{v}]``
(metadata), ``…/config`` (Triton's model configuration), ``…/ready``, ``…/infer``, and ``/metrics``
for Prometheus. Every failure is a JSON body ``{"error": "..."}`` with the status of its
:mod:`shipyard.serve.errors` class.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.serve import headercache, tensors
from shipyard.serve.accesslog import AccessLogMiddleware
from shipyard.serve.config import config_json
from shipyard.serve.errors import BadRequest, RequestTooLarge, ServeError
from shipyard.serve.limits import BodyTimeout, Holding
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

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.render(), media_type=state.metrics.content_type)

    from shipyard.serve.http_infer import InferEndpoint, InferFirst

    infer = InferEndpoint(state)
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
            Route(prefix + "/infer", infer, methods=["POST"]),  # only other methods reach it
        ]
    from shipyard.serve.tfserving_rest import routes as tfserving_routes

    routes += tfserving_routes(state)  # TensorFlow Serving's /v1/models/… on the same port
    return InferFirst(infer, AccessLogMiddleware(Starlette(routes=routes)))


async def _guard(make: Any) -> Response:
    try:
        return make()
    except ServeError as exc:
        return _error(exc)


def _error(exc: ServeError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _model(state: ServerState, request: Request) -> ServedModel:
    return state.repository.get(request.path_params["model"], request.path_params.get("version"))


def decode_checked(
    model: ModelFace, body: bytes, header_length: str | None, max_bytes: int
) -> tuple[dict[str, Any], dict[str, np.ndarray], list[dict[str, Any]] | None]:
    """Parse, decode and check one request body (run it off the event loop: see
    ``limits.off_loop``). A binary-data header seen before is not parsed again
    (:mod:`shipyard.serve.headercache`)."""
    header_bytes = _header_bytes(body, header_length)
    if header_bytes is not None:
        plan = headercache.plan_for(model, header_bytes, max_bytes)
        inputs = None if plan is None else plan.inputs(memoryview(body)[len(header_bytes) :])
        if inputs is not None:
            model.check_request(inputs)
            return plan.header, inputs, plan.outputs
    header, binary = split_body(body, header_length)
    inputs, outputs = decode_request(model, header, binary, max_bytes)
    model.check_request(inputs)  # content checks before batching, so a bad request fails alone
    if header_bytes is not None:
        planned = headercache.remember(model, header_bytes, max_bytes, header, outputs, len(binary))
        header = header if planned is None else planned
    return header, inputs, outputs


def _header_bytes(body: bytes, header_length: str | None) -> bytes | None:
    """The JSON header of a binary-data body when it is small enough to remember."""
    if header_length is None or not header_length.isdigit():
        return None
    size = int(header_length)
    if size > len(body) or size > headercache.MAX_HEADER_BYTES:
        return None
    return bytes(body[:size])


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
    """The body of a Starlette request, with the limits of :func:`receive_body`."""
    return await receive_body(request.receive, request.headers.get, limit, holding, deadline_s)


async def receive_body(
    receive: Callable[[], Awaitable[dict]],
    header: Callable[[str], str | None],
    limit: int,
    holding: Holding | None = None,
    deadline_s: float | None = None,
    arrived: bool = False,
) -> bytes:
    """The body from ASGI ``receive``, at most ``limit`` bytes (413), within ``deadline_s`` (408);
    bytes count on ``holding``. ``header(name)`` is the request's header of a lower-case name;
    ``arrived`` says the server already holds the whole body (no deadline is needed to read it)."""
    length = header("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestTooLarge(f"request body is {length} bytes; expected at most {limit} bytes")
    if holding is not None and length is not None and length.isdigit():
        holding.add(int(length))  # reserved before reading: over budget is 503 before the body
        holding_chunks = None
    else:
        holding_chunks = holding
    try:
        if arrived or deadline_s is None:
            body = await _receive_chunks(receive, limit, holding_chunks)
        else:
            async with _deadline(deadline_s):
                body = await _receive_chunks(receive, limit, holding_chunks)
    except TimeoutError:
        raise BodyTimeout(
            f"request body took over {deadline_s:g} s to arrive; expected the whole body "
            f"within the server's body timeout"
        ) from None
    encoding = (header("content-encoding") or "identity").lower()
    if encoding == "identity":
        return body
    data = _decompress(body, encoding, limit)
    if holding is not None:
        holding.add(len(data))
    return data


def _deadline(seconds: float) -> Any:
    """``asyncio.timeout`` (no task per request) where Python has it, else a task with a timeout."""
    if hasattr(asyncio, "timeout"):
        return asyncio.timeout(seconds)
    return _TaskDeadline(seconds)


class _TaskDeadline:  # Python 3.10: cancel the body read from a timer, as asyncio.timeout does
    def __init__(self, seconds: float | None) -> None:
        self.seconds, self.expired, self._timer = seconds, False, None

    async def __aenter__(self) -> None:
        if self.seconds is not None:
            task = asyncio.current_task()
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._expire, task)

    def _expire(self, task: asyncio.Task) -> None:
        self.expired = True
        task.cancel()

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if self._timer is not None:
            self._timer.cancel()
        if self.expired and kind is asyncio.CancelledError:
            raise TimeoutError
        return False


async def _receive_chunks(
    receive: Callable[[], Awaitable[dict]], limit: int, holding: Holding | None
) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client disconnected before sending its whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(
                f"request body is over {limit} bytes; expected at most {limit} bytes"
            )
        if holding is not None and chunk:
            holding.add(len(chunk))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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


@dataclass
class EncodedResponse:
    """A response body and what its headers say about it."""

    body: bytes
    media_type: str
    json_length: int | None = None
    """Bytes of JSON before the binary outputs (Inference-Header-Content-Length), if any."""

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """ASGI headers, in the order Starlette's ``Response`` writes them."""
        headers = (
            [] if self.json_length is None else [(HEADER_LENGTH.encode(), b"%d" % self.json_length)]
        )
        headers.append((b"content-length", b"%d" % len(self.body)))
        headers.append((b"content-type", self.media_type.encode("latin-1")))
        return headers


def encode_response(
    model: ModelFace,
    header: dict[str, Any],
    results: dict[str, np.ndarray],
    outputs: list[dict[str, Any]] | None,
) -> Response:
    """:func:`encode_body` as a Starlette response (for the Ray Serve deployment)."""
    answer = encode_body(model, header, results, outputs)
    extra = None if answer.json_length is None else {HEADER_LENGTH: str(answer.json_length)}
    return Response(answer.body, media_type=answer.media_type, headers=extra)


def encode_body(
    model: ModelFace,
    header: dict[str, Any],
    results: dict[str, np.ndarray],
    outputs: list[dict[str, Any]] | None,
) -> EncodedResponse:
    """The KServe v2 response: JSON, then the binary outputs, joined once."""
    all_binary = bool(_parameters(header, "request").get("binary_data_output", False))
    wanted = outputs if outputs is not None else [{"name": n} for n in model.signature.output_names]
    picked = []  # (spec, array, raw bytes or None for JSON data)
    for request in wanted:
        spec = model.output_spec(request["name"])
        array = results[spec.name]
        binary = _parameters(request, "output").get("binary_data", all_binary)
        picked.append((spec, array, tensors.to_raw(array, spec.datatype) if binary else None))
    blobs = [blob for _, _, blob in picked if blob is not None]

    def make() -> bytes:
        return _response_json(model, header, picked)

    if len(blobs) == len(picked):  # all binary: the JSON depends only on shapes and sizes
        key = tuple((array.shape, len(blob)) for _, array, blob in picked)
        text = headercache.cached_response_json(header, key, make)
    else:
        text = make()
    if not blobs:
        return EncodedResponse(text, "application/json")
    return EncodedResponse(b"".join([text, *blobs]), "application/octet-stream", len(text))


def _response_json(
    model: ModelFace, header: dict[str, Any], picked: list[tuple[Any, np.ndarray, bytes | None]]
) -> bytes:
    entries = []
    for spec, array, blob in picked:
        entry: dict[str, Any] = {
            "name": spec.name,
            "datatype": spec.datatype,
            "shape": list(array.shape),
        }
        if blob is not None:
            entry["parameters"] = {"binary_data_size": len(blob)}
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
    return json.dumps(body).encode()
