"""TensorFlow Serving's gRPC API on the gRPC port, beside KServe v2's ``GRPCInferenceService``.

``tensorflow.serving.PredictionService`` answers ``Predict`` and ``GetModelMetadata``
(``signature_def``); ``tensorflow.serving.ModelService`` answers ``GetModelStatus``. Requests go
through the same size limit, batcher, deadline, metrics and access log as ``ModelInfer``. The
protos come from ``tensorflow-serving-api`` (an optional extra, loaded without TensorFlow's
runtime, see :mod:`shipyard.serve.tfserving_protos`); without it the server starts with KServe v2
alone and logs how to turn this on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from google.protobuf import json_format

from shipyard.serve import tfserving
from shipyard.serve.accesslog import log_access
from shipyard.serve.errors import BadRequest, ModelNotFound, ServeError
from shipyard.serve.limits import off_loop
from shipyard.serve.repository import ServedModel
from shipyard.serve.state import ServerState
from shipyard.serve.tfserving_protos import Protos, ProtosUnavailable, load_protos
from shipyard.serve.tfserving_tensors import from_tensor_proto, to_tensor_proto

PROTOCOL = "tfserving_grpc"
_LOG = logging.getLogger("shipyard.serve")


def add_services(server: Any, state: ServerState) -> bool:
    """Add the TF Serving services to a ``grpc.aio`` server; False (and a logged reason) without
    the extra."""
    try:
        protos = load_protos()
    except ProtosUnavailable as exc:
        _LOG.warning("TensorFlow Serving gRPC API is off: %s", exc)
        return False
    protos.prediction_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(state, protos), server
    )
    protos.model_service_grpc.add_ModelServiceServicer_to_server(
        ModelService(state, protos), server
    )
    return True


class _Face:
    def __init__(self, state: ServerState, protos: Protos) -> None:
        self.state, self.pb = state, protos

    def model(self, spec: Any) -> ServedModel:
        if spec.version_label:
            raise ModelNotFound(
                f"model {spec.name!r} has no version label {spec.version_label!r}; expected a "
                f"numeric version (packages carry no labels)"
            )
        version = str(spec.version.value) if spec.HasField("version") else None
        return self.state.repository.get(spec.name, version)

    def model_spec(self, model: ServedModel, signature: str = tfserving.SIGNATURE) -> Any:
        spec = self.pb.model.ModelSpec(name=model.name, signature_name=signature)
        spec.version.value = tfserving.tf_version(model)
        return spec

    async def unimplemented(self, context: Any, what: str) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{what} is not served; expected Predict (packages have one predict signature)",
        )


class PredictionService(_Face):
    """``tensorflow.serving.PredictionService``: Predict and GetModelMetadata."""

    async def Predict(self, request: Any, context: Any) -> Any:
        started, status = time.perf_counter(), 200
        try:
            model = self.model(request.model_spec)
            tfserving.check_signature(model, request.model_spec.signature_name)
            async with (
                self.state.budget.hold() as holding
            ):  # the KServe endpoints' bounds (serve/limits.py)
                holding.add(request.ByteSize())
                inputs = await off_loop(self._decode, model, request)
                wanted = list(request.output_filter) or model.signature.output_names
                model.check_output_names(wanted)
                results = await model.infer(
                    inputs, context.time_remaining()
                )  # the client's deadline, if any
                return await off_loop(self._encode, model, results, wanted)
        except ServeError as exc:
            status = exc.status
            await context.abort(grpc.StatusCode[exc.grpc_code], str(exc))
        except Exception as exc:  # noqa: BLE001 - never let one request take the server down
            status = 500
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
            )
        finally:
            self._observe(request, context, time.perf_counter() - started, status)

    def _decode(self, model: ServedModel, request: Any) -> dict[str, Any]:
        model.check_input_names(list(request.inputs.keys()))
        limit = self.state.options.max_request_bytes
        inputs = {
            name: from_tensor_proto(model.input_spec(name), proto, self.pb.types, limit)
            for name, proto in request.inputs.items()
        }
        model.check_request(inputs)  # content checks before batching, so a bad request fails alone
        return inputs

    def _encode(self, model: ServedModel, results: dict[str, Any], wanted: list[str]) -> Any:
        response = self.pb.predict.PredictResponse(model_spec=self.model_spec(model))
        for name in wanted:
            proto = to_tensor_proto(
                model.output_spec(name), results[name], self.pb.tensor, self.pb.types
            )
            response.outputs[name].CopyFrom(proto)
        return response

    def _observe(self, request: Any, context: Any, seconds: float, status: int) -> None:
        name = request.model_spec.name
        if name in self.state.repository.models:  # unknown names stay out of the labels
            self.state.metrics.observe_request(name, PROTOCOL, seconds, status)
        log_access(
            protocol=PROTOCOL,
            method="Predict",
            model=name,
            status=status,
            ms=round(seconds * 1000, 3),
            bytes_in=request.ByteSize(),
            peer=context.peer(),
        )

    async def GetModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            model = self.model(request.model_spec)
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise BadRequest(
                    f"metadata_field is {fields}; expected ['signature_def'], the only metadata "
                    f"served"
                )
        except ServeError as exc:
            await context.abort(grpc.StatusCode[exc.grpc_code], str(exc))
        signatures = json_format.ParseDict(
            tfserving.signature_def_map(model), self.pb.metadata.SignatureDefMap()
        )
        response = self.pb.metadata.GetModelMetadataResponse(model_spec=self.model_spec(model, ""))
        response.metadata["signature_def"].Pack(signatures)
        return response

    async def Classify(self, request: Any, context: Any) -> Any:
        await self.unimplemented(context, "Classify")

    async def Regress(self, request: Any, context: Any) -> Any:
        await self.unimplemented(context, "Regress")

    async def MultiInference(self, request: Any, context: Any) -> Any:
        await self.unimplemented(context, "MultiInference")


class ModelService(_Face):
    """``tensorflow.serving.ModelService``: GetModelStatus (reloading a config is not served)."""

    async def GetModelStatus(self, request: Any, context: Any) -> Any:
        try:
            spec = request.model_spec
            models = (
                [self.model(spec)]
                if spec.HasField("version") or spec.version_label
                else tfserving.status_models(self.state.repository, spec.name, None)
            )
        except ServeError as exc:
            await context.abort(grpc.StatusCode[exc.grpc_code], str(exc))
        response = self.pb.status.GetModelStatusResponse()
        for model in models:
            json_format.ParseDict(
                tfserving.version_status(model, self.state.ready),
                response.model_version_status.add(),
            )
        return response

    async def HandleReloadConfigRequest(self, request: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "HandleReloadConfigRequest is not served; expected "
            "the packages to be given to shipyard serve",
        )
