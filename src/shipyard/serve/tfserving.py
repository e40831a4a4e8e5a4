"""What TensorFlow Serving's REST and gRPC faces share: dtypes, the one signature, status and
metadata.

A package is served to TensorFlow Serving clients as one ``serving_default`` predict signature
whose inputs and outputs are the package's own, so ``signature_name`` may be empty or
``serving_default``. Metadata and status are built here as the JSON that TF Serving's REST API
answers with (protobuf JSON: int64 as strings, enums by name); the gRPC face parses the same
JSON into the protos, so both say the same thing.
"""

from __future__ import annotations

from typing import Any

from shipyard.records import TensorSpec
from shipyard.serve.errors import BadRequest
from shipyard.serve.repository import ModelFace, Repository, ServedModel

SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"

TF_DTYPES = {
    "FP32": "DT_FLOAT",
    "FP64": "DT_DOUBLE",
    "FP16": "DT_HALF",
    "INT8": "DT_INT8",
    "INT16": "DT_INT16",
    "INT32": "DT_INT32",
    "INT64": "DT_INT64",
    "UINT8": "DT_UINT8",
    "UINT16": "DT_UINT16",
    "UINT32": "DT_UINT32",
    "UINT64": "DT_UINT64",
    "BOOL": "DT_BOOL",
    "BYTES": "DT_STRING",
}


def tf_dtype(spec: TensorSpec) -> str:
    """The TensorFlow ``DataType`` name (``DT_FLOAT``…) of a tensor spec."""
    return TF_DTYPES[spec.datatype]


def check_signature(model: ModelFace, name: str) -> None:
    """Every package has one signature; TF Serving treats an empty name as ``serving_default``."""
    if name not in ("", SIGNATURE):
        raise BadRequest(
            f"signature_name {name!r} is not a signature of model {model.name!r}; expected "
            f"{SIGNATURE!r} (or none)"
        )


def tf_version(model: ModelFace) -> int:
    """TF Serving versions are int64; a package version that is not a number is shown as 0."""
    return int(model.version) if model.version.isdigit() else 0


def model_spec(model: ModelFace, signature: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": model.name, "version": str(tf_version(model))}
    if signature:
        spec["signature_name"] = SIGNATURE
    return spec


def status_models(repository: Repository, name: str, version: str | None) -> list[ServedModel]:
    """The models a status request names: the version asked for, or every version of the name."""
    if version:
        return [repository.get(name, version)]
    repository.get(name)  # raises ModelNotFound naming the served models
    return list(repository.models[name].values())


def version_status(model: ModelFace, ready: bool) -> dict[str, Any]:
    """One ``ModelVersionStatus``: AVAILABLE while the server takes requests, UNLOADING as it
    stops."""
    return {
        "version": str(tf_version(model)),
        "state": "AVAILABLE" if ready else "UNLOADING",
        "status": {"error_code": "OK", "error_message": ""},
    }


def signature_def_map(model: ModelFace) -> dict[str, Any]:
    """The ``SignatureDefMap`` JSON: one predict signature with the package's inputs and outputs."""
    signature = {
        "inputs": {s.name: _tensor_info(s) for s in model.signature.inputs},
        "outputs": {s.name: _tensor_info(s) for s in model.signature.outputs},
        "method_name": PREDICT_METHOD,
    }
    return {"signature_def": {SIGNATURE: signature}}


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    dims = [{"size": str(d), "name": ""} for d in spec.kserve_shape]
    return {
        "name": spec.name,
        "dtype": tf_dtype(spec),
        "tensor_shape": {"dim": dims, "unknown_rank": False},
    }


def metadata(model: ModelFace) -> dict[str, Any]:
    """The REST ``GET /v1/models/{m}/metadata`` body."""
    return {
        "model_spec": model_spec(model, signature=False) | {"signature_name": ""},
        "metadata": {"signature_def": signature_def_map(model)},
    }
