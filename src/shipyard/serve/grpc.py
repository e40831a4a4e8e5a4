"""KServe v2 gRPC front end: ``inference.GRPCInferenceService`` on a ``grpc.aio`` server.

The messages and service stubs are the generated KServe v2 protos that ``tritonclient[grpc]``
ships (``tritonclient.grpc.service_pb2``), so the wire format is exactly what Triton speaks and
``tritonclient.grpc`` works unchanged. Tensors travel as ``raw_input_contents`` /
``raw_output_contents`` (what Triton answers with); typed ``contents`` are accepted on input.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import numpy as np

from shipyard.serve import tensors
from shipyard.serve.accesslog import access_log_on, log_access
from shipyard.serve.config import model_config
from shipyard.serve.errors import BadRequest, ServeError
from shipyard.serve.limits import off_loop
from shipyard.serve.repository import ServedModel
from shipyard.serve.state import ServerState
from shipyard.serve.stats import grpc_statistics

try:
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc
except ImportError as exc:  # pragma: no cover - the serve extra installs it
    raise ImportError(
        "the gRPC front end needs the KServe v2 protos: pip install 'shipyard[serve]'"
    ) from exc

_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """The KServe v2 RPCs; the others answer UNIMPLEMENTED from the generated base class."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.state.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        meta = self.state.server_metadata()
        return pb.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    async def ModelReady(self, request: Any, context: Any) -> Any:
        await self._model(request, context)
        return pb.ModelReadyResponse(ready=self.state.ready)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        meta = (await self._model(request, context)).metadata()
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        return pb.ModelConfigResponse(config=model_config(await self._model(request, context)))

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        return await grpc_statistics(self.state, request, context)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        started, status = time.perf_counter(), 200
        try:
            model = self.state.repository.get(request.model_name, request.model_version)
            async with self.state.budget.hold() as holding:
                size = request.ByteSize()
                holding.add(size)
                inputs = await off_loop(
                    _decode_checked, model, request, self.state.options.max_request_bytes, size=size
                )
                wanted = [o.name for o in request.outputs] or model.signature.output_names
                model.check_output_names(wanted)
                # the client's deadline, if any
                results = await model.infer(inputs, context.time_remaining())
                size = sum(getattr(a, "nbytes", 0) for a in results.values())
                return await off_loop(
                    _encode_response, model, request.id, results, wanted, size=size
                )
        except ServeError as exc:
            status = exc.status
            await context.abort(grpc.StatusCode[exc.grpc_code], str(exc))
        except Exception as exc:  # noqa: BLE001 - never let one request take the server down
            status = 500
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
            )
        finally:
            seconds = time.perf_counter() - started
            if request.model_name in self.state.repository.models:
                self.state.metrics.observe_request(request.model_name, "grpc", seconds, status)
            if access_log_on():
                log_access(
                    protocol="grpc",
                    method="ModelInfer",
                    model=request.model_name,
                    status=status,
                    ms=round(seconds * 1000, 3),
                    bytes_in=request.ByteSize(),
                    peer=context.peer(),
                )

    async def _model(self, request: Any, context: Any) -> ServedModel:
        try:
            return self.state.repository.get(request.name, request.version)
        except ServeError as exc:
            await context.abort(grpc.StatusCode[exc.grpc_code], str(exc))


def _decode_checked(model: ServedModel, request: Any, max_bytes: int) -> dict[str, np.ndarray]:
    inputs = _decode_inputs(model, request, max_bytes)
    model.check_request(inputs)  # content checks before batching, so a bad request fails alone
    return inputs


def _decode_inputs(model: ServedModel, request: Any, max_bytes: int) -> dict[str, np.ndarray]:
    model.check_input_names([t.name for t in request.inputs])
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"request has {len(raw)} raw_input_contents for {len(request.inputs)} inputs; "
            f"expected one per input"
        )
    inputs = {}
    for index, tensor in enumerate(request.inputs):
        spec = model.input_spec(tensor.name)
        shape = tensors.check_header(spec, tensor.datatype, list(tensor.shape), max_bytes)
        model.check_batch_dim(spec, shape)
        if raw:
            inputs[spec.name] = tensors.from_raw(spec, shape, raw[index])
        else:
            inputs[spec.name] = _from_contents(spec, shape, tensor)
    return inputs


def _from_contents(spec: Any, shape: tuple[int, ...], tensor: Any) -> np.ndarray:
    field = _CONTENTS_FIELD.get(spec.datatype)
    if field is None:
        raise BadRequest(
            f"input {spec.name!r} ({spec.datatype}) has no typed contents field; expected "
            f"raw_input_contents"
        )
    values = list(getattr(tensor.contents, field))
    if spec.datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        array = np.asarray(values, dtype=spec.dtype)
    if array.size != int(np.prod(shape)):
        raise BadRequest(
            f"input {spec.name!r} has {array.size} elements in {field}; expected "
            f"{int(np.prod(shape))} for shape {list(shape)}"
        )
    return array.reshape(shape)


def _encode_response(
    model: ServedModel, request_id: str, results: dict[str, np.ndarray], wanted: list[str]
) -> Any:
    response = pb.ModelInferResponse(
        model_name=model.name, model_version=model.version, id=request_id
    )
    for name in wanted:
        spec, array = model.output_spec(name), results[name]
        response.outputs.add(name=name, datatype=spec.datatype, shape=list(array.shape))
        response.raw_output_contents.append(tensors.to_raw(array, spec.datatype))
    return response


GRPC_IDLE_MS = 60_000


def make_server(state: ServerState, address: str, reuse_port: bool = False) -> tuple[Any, int]:
    """A ``grpc.aio`` server bound to ``address`` (``host:port``), not yet started, and its port;
    ``reuse_port`` lets other serving processes bind the same port (gRPC's own default would let
    any process do so silently: a second server on a taken port must fail instead)."""
    limit = state.options.max_request_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.max_concurrent_streams", 100),
            # an idle connection is closed (GOAWAY; clients reconnect by themselves)
            ("grpc.max_connection_idle_ms", GRPC_IDLE_MS),
            ("grpc.so_reuseport", int(reuse_port)),
        ],
        maximum_concurrent_rpcs=state.options.max_connections,
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(state), server)
    from shipyard.serve.tfserving_grpc import add_services

    add_services(
        server, state
    )  # TensorFlow Serving's PredictionService and ModelService, when installed
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC to {address}; expected a free port")
    return server, port
