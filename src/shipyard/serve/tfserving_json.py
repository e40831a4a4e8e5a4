"""TensorFlow Serving's REST predict JSON ↔ numpy, checked against the model before it is queued.

Requests come in the *row* format (``{"instances": [...]}``: one entry per sample, each a value
or an object of named inputs, stacked on a new batch axis) or the *columnar* format
(``{"inputs": value | {name: value}}``: whole tensors). Answers mirror the request:
``{"predictions": [...]}`` per sample, or ``{"outputs": value | {name: value}}``. BYTES values are
JSON strings or ``{"b64": "..."}``; BYTES outputs whose name ends in ``_bytes`` are answered as
``{"b64": "..."}`` as TF Serving does. Shapes and sizes are checked by the same
:mod:`shipyard.serve.tensors` functions as KServe v2 requests.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.records import TensorSpec
from shipyard.serve import tensors
from shipyard.serve.errors import BadRequest
from shipyard.serve.repository import ModelFace
from shipyard.serve.tfserving import check_signature


@dataclass
class PredictRequest:
    """A decoded predict request: checked inputs, and whether to answer in rows or columns."""

    inputs: dict[str, np.ndarray]
    row: bool
    signature_name: str = ""


def parse_predict(model: ModelFace, body: bytes, max_bytes: int) -> PredictRequest:
    """Decode and check a ``:predict`` body against ``model``'s inputs."""
    request = _load_json(body)
    signature = request.get("signature_name", "")
    if not isinstance(signature, str):
        raise BadRequest(
            f"signature_name is {signature!r}; expected a string such as 'serving_default'"
        )
    check_signature(model, signature)
    has_rows, has_columns = "instances" in request, "inputs" in request
    if has_rows == has_columns:
        raise BadRequest(
            "predict request needs exactly one of 'instances' (row format) or 'inputs' "
            '(columnar format); expected e.g. {"instances": [...]}'
        )
    columns = (
        _rows_to_columns(model, request["instances"])
        if has_rows
        else _columns(model, request["inputs"])
    )
    model.check_input_names(list(columns))
    inputs = {
        name: to_array(model.input_spec(name), value, max_bytes) for name, value in columns.items()
    }
    return PredictRequest(inputs, has_rows, signature)


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(
            f"request JSON is malformed: {exc}; expected a TensorFlow Serving predict request"
        ) from exc
    if not isinstance(request, dict):
        raise BadRequest(
            f"request JSON is a {type(request).__name__}; expected an object with "
            f"'instances' or 'inputs'"
        )
    return request


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and list(value) == ["b64"]


def _rows_to_columns(model: ModelFace, instances: Any) -> dict[str, Any]:
    if not isinstance(instances, list) or not instances:
        raise BadRequest(
            f"'instances' is {_describe(instances)}; expected a non-empty list with one "
            f"entry per sample"
        )
    if not model.batched:
        raise BadRequest(
            f"model {model.name!r} has no batch axis, so it takes no 'instances'; expected "
            f'the columnar format {{"inputs": ...}}'
        )
    named = [_is_named(item) for item in instances]
    if any(named) and not all(named):
        raise BadRequest(
            "'instances' mixes objects of named inputs with bare values; expected one form "
            "for every sample"
        )
    if not named[0]:
        return {_only_input(model, "instances"): instances}
    names = list(instances[0])
    for index, item in enumerate(instances):
        if sorted(item) != sorted(names):
            raise BadRequest(
                f"instance {index} has inputs {sorted(item)}; expected the same inputs "
                f"{sorted(names)} in every instance"
            )
    return {name: [item[name] for item in instances] for name in names}


def _columns(model: ModelFace, inputs: Any) -> dict[str, Any]:
    if _is_named(inputs):
        return dict(inputs)
    return {_only_input(model, "inputs"): inputs}


def _only_input(model: ModelFace, key: str) -> str:
    names = model.signature.input_names
    if len(names) != 1:
        raise BadRequest(
            f"'{key}' holds a bare value, but model {model.name!r} has inputs {names}; "
            f"expected an object naming each input"
        )
    return names[0]


def _describe(value: Any) -> str:
    return "an empty list" if value == [] else f"a JSON {type(value).__name__}"


def to_array(spec: TensorSpec, value: Any, max_bytes: int) -> np.ndarray:
    """One input's JSON value (nested lists, a scalar, strings or ``{"b64"}``) as a checked
    array."""
    shape = nested_shape(spec, value)
    shape = tensors.check_header(spec, spec.datatype, list(shape), max_bytes)
    if spec.dtype != "bytes":
        return tensors.from_json_data(spec, shape, value if isinstance(value, list) else [value])
    flat = _flat(value, len(shape))
    array = np.empty(len(flat), dtype=object)
    array[:] = [_leaf_bytes(spec, item) for item in flat]
    return array.reshape(shape)


def nested_shape(spec: TensorSpec, value: Any) -> tuple[int, ...]:
    """The shape of rectangular nested lists; ragged lists and too many levels are refused."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        if len(shape) >= len(spec.shape):
            raise BadRequest(
                f"input {spec.name!r} is nested deeper than its {len(spec.shape)} dimensions; "
                f"expected shape {spec.kserve_shape} (-1 = any size)"
            )
        shape.append(len(probe))
        probe = probe[0] if probe else None
    level = [value]
    for depth, size in enumerate(shape):
        if any(not isinstance(item, list) or len(item) != size for item in level):
            raise BadRequest(
                f"input {spec.name!r} is ragged at depth {depth}; expected every list there "
                f"to hold {size} entries"
            )
        level = [child for item in level for child in item]
    if any(isinstance(item, list) for item in level):
        raise BadRequest(
            f"input {spec.name!r} is ragged at depth {len(shape)}; expected values, not lists"
        )
    return tuple(shape)


def _flat(value: Any, rank: int) -> list[Any]:
    level = [value]
    for _ in range(rank):
        level = [child for item in level for child in item]
    return level


def _leaf_bytes(spec: TensorSpec, item: Any) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8")
    if _is_b64(item) and isinstance(item["b64"], str):
        try:
            return base64.b64decode(item["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(
                f"input {spec.name!r} has a 'b64' value that is not base64: {exc}; expected "
                f"standard base64 text"
            ) from exc
    raise BadRequest(
        f'input {spec.name!r} holds {_describe(item)}; expected strings or {{"b64": "..."}} '
        f"for {spec.datatype}"
    )


def predict_response(model: ModelFace, results: dict[str, np.ndarray], row: bool) -> dict[str, Any]:
    """The answer body: ``predictions`` per sample for a row request, ``outputs`` for a columnar
    one."""
    names = model.signature.output_names
    values = {name: to_json_value(model.output_spec(name), results[name]) for name in names}
    if not row:
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    sizes = {name: results[name].shape[0] if results[name].ndim else None for name in names}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise BadRequest(
            f"model {model.name!r} answered outputs with batch sizes {sizes}; the row format "
            f'needs one batch size for all, expected the columnar format {{"inputs": ...}}'
        )
    if len(names) == 1:
        return {"predictions": values[names[0]]}
    return {
        "predictions": [{name: values[name][i] for name in names} for i in range(sizes[names[0]])]
    }


def to_json_value(spec: TensorSpec, array: np.ndarray) -> Any:
    """An output array as nested JSON lists (BYTES as text, or ``{"b64"}`` for ``*_bytes``
    names)."""
    if spec.datatype != "BYTES":
        return array.tolist()
    encode = _b64_value if spec.name.endswith("_bytes") else _text_value
    flat = [encode(item) for item in array.reshape(-1).tolist()]
    if not array.shape:
        return flat[0]
    nested = np.empty(len(flat), dtype=object)
    nested[:] = flat
    return nested.reshape(array.shape).tolist()


def _as_bytes(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode("utf-8")


def _text_value(item: Any) -> str:
    return _as_bytes(item).decode("utf-8", "replace")


def _b64_value(item: Any) -> dict[str, str]:
    return {"b64": base64.b64encode(_as_bytes(item)).decode("ascii")}
