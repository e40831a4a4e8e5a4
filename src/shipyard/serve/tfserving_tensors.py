"""TensorFlow ``TensorProto`` ↔ numpy for the TF Serving gRPC face, checked against the model's
inputs.

Numbers arrive as ``tensor_content`` (raw little-endian, what ``tf.make_tensor_proto`` writes) or
in the typed ``*_val`` field (one value is broadcast to the whole shape, as TensorFlow does);
strings in ``string_val``. Shapes and sizes are checked by
:func:`shipyard.serve.tensors.check_header`
before anything is allocated. Answers carry numbers as ``tensor_content`` and strings as
``string_val``, as TF Serving answers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shipyard.records import TensorSpec, numpy_dtype
from shipyard.serve import tensors
from shipyard.serve.errors import BadRequest
from shipyard.serve.tfserving import tf_dtype

_VAL_FIELD = {
    "FP32": "float_val",
    "FP64": "double_val",
    "FP16": "half_val",
    "INT8": "int_val",
    "INT16": "int_val",
    "INT32": "int_val",
    "UINT8": "int_val",
    "UINT16": "int_val",
    "INT64": "int64_val",
    "UINT32": "uint32_val",
    "UINT64": "uint64_val",
    "BOOL": "bool_val",
    "BYTES": "string_val",
}


def from_tensor_proto(spec: TensorSpec, proto: Any, types: Any, max_bytes: int) -> np.ndarray:
    """The numpy array of one request ``TensorProto`` (``types`` is TensorFlow's ``types_pb2``)."""
    got = _dtype_name(types, proto.dtype)
    if got != tf_dtype(spec):
        raise BadRequest(
            f"input {spec.name!r} has dtype {got}; expected {tf_dtype(spec)} "
            f"(shape {spec.kserve_shape})"
        )
    if proto.tensor_shape.unknown_rank:
        raise BadRequest(
            f"input {spec.name!r} has an unknown rank; expected shape {spec.kserve_shape}"
        )
    shape = tensors.check_header(
        spec, spec.datatype, [d.size for d in proto.tensor_shape.dim], max_bytes
    )
    if spec.dtype == "bytes":
        return _fill(spec, shape, _object_array(list(proto.string_val)), "string_val")
    if proto.tensor_content:
        return tensors.from_raw(spec, shape, proto.tensor_content)
    field = _VAL_FIELD[spec.datatype]
    values = list(getattr(proto, field))
    try:
        if spec.datatype == "FP16":  # half_val holds each float16's bit pattern as an int32
            array = np.asarray(values, dtype=np.uint16).view(np.float16)
        else:
            array = np.asarray(values, dtype=numpy_dtype(spec.dtype))
    except OverflowError as exc:
        raise BadRequest(
            f"input {spec.name!r} has values in {field} outside {spec.datatype}'s range; "
            f"expected {spec.datatype} values"
        ) from exc
    return _fill(spec, shape, array, field)


def _dtype_name(types: Any, number: int) -> str:
    try:
        return types.DataType.Name(number)
    except ValueError:
        return f"DataType {number}"


def _object_array(items: list[bytes]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _fill(spec: TensorSpec, shape: tuple[int, ...], flat: np.ndarray, field: str) -> np.ndarray:
    count = math.prod(shape)
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size == 1:
        return np.full(shape, flat[0], dtype=flat.dtype)
    raise BadRequest(
        f"input {spec.name!r} has {flat.size} values in {field}; expected {count} for shape "
        f"{list(shape)} (or one value for all, or tensor_content)"
    )


def to_tensor_proto(spec: TensorSpec, array: np.ndarray, tensor: Any, types: Any) -> Any:
    """One output as a ``TensorProto`` (``tensor`` is TensorFlow's ``tensor_pb2``)."""
    proto = tensor.TensorProto(dtype=types.DataType.Value(tf_dtype(spec)))
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if spec.datatype == "BYTES":
        proto.string_val.extend(
            x if isinstance(x, bytes) else str(x).encode("utf-8")
            for x in array.reshape(-1).tolist()
        )
    else:
        proto.tensor_content = tensors.to_raw(
            np.asarray(array, dtype=numpy_dtype(spec.dtype)), spec.datatype
        )
    return proto
