"""KServe v2 tensors ↔ numpy, checked against the model's inputs before anything is allocated.

Shared by the HTTP and gRPC front ends: JSON ``data`` lists, raw little-endian buffers (the binary
tensor extension and gRPC ``raw_input_contents``), and BYTES tensors, whose raw form is each
element as a 4-byte little-endian length followed by its bytes.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from shipyard.records import TensorSpec, numpy_dtype
from shipyard.serve.errors import BadRequest, RequestTooLarge


def check_header(spec: TensorSpec, datatype: Any, shape: Any, max_bytes: int) -> tuple[int, ...]:
    """Check an input's declared datatype and shape; returns the shape as a tuple of ints."""
    if datatype != spec.datatype:
        raise BadRequest(f"input {spec.name!r} has datatype {datatype!r}; expected {spec.datatype}")
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        raise BadRequest(
            f"input {spec.name!r} has shape {shape!r}; expected a list of integers like "
            f"{spec.kserve_shape} (-1 = any size)"
        )
    shape = tuple(shape)
    if len(spec.shape) == 1 and len(shape) == 2 and shape[1] == 1:
        shape = shape[
            :1
        ]  # one value per sample as Triton's config has it (dims [1], empty reshape)
    if len(shape) != len(spec.shape) or any(d < 0 for d in shape):
        raise BadRequest(
            f"input {spec.name!r} has shape {list(shape)}; expected {len(spec.shape)} "
            f"non-negative dimensions like {spec.kserve_shape} (-1 = any size)"
        )
    for axis, (got, want) in enumerate(zip(shape, spec.shape)):
        if isinstance(want, int) and got != want:
            raise BadRequest(
                f"input {spec.name!r} has size {got} on axis {axis}; expected {want} "
                f"(shape {spec.kserve_shape})"
            )
    itemsize = 1 if spec.dtype == "bytes" else numpy_dtype(spec.dtype).itemsize
    if math.prod(shape) * itemsize > max_bytes:
        raise RequestTooLarge(
            f"input {spec.name!r} has shape {list(shape)}, {math.prod(shape) * itemsize} "
            f"bytes; expected at most {max_bytes} bytes per request"
        )
    return shape


def from_json_data(spec: TensorSpec, shape: tuple[int, ...], data: Any) -> np.ndarray:
    """The numpy array of a JSON ``data`` list (flat or nested, row-major)."""
    if not isinstance(data, list):
        raise BadRequest(
            f"input {spec.name!r} has data of type {type(data).__name__}; expected a JSON list"
        )
    if spec.dtype == "bytes":
        return _json_bytes(spec, shape, data)
    try:
        array = np.asarray(data)
    except ValueError as exc:
        raise BadRequest(
            f"input {spec.name!r} has ragged nested data; expected a list of "
            f"{math.prod(shape)} numbers for shape {list(shape)}"
        ) from exc
    if array.size and array.dtype.kind not in "biuf":
        raise BadRequest(
            f"input {spec.name!r} holds non-numeric data ({array.dtype.kind!r} values); "
            f"expected {spec.datatype} numbers"
        )
    want = numpy_dtype(spec.dtype)
    if array.dtype.kind == "f" and want.kind in "iub":
        raise BadRequest(
            f"input {spec.name!r} holds fractional numbers; expected {spec.datatype} integers"
        )
    _check_count(spec, shape, array.size)
    return array.astype(want, copy=False).reshape(shape)


def _json_bytes(spec: TensorSpec, shape: tuple[int, ...], data: list) -> np.ndarray:
    flat = _flatten(data)
    if not all(isinstance(item, str) for item in flat):
        raise BadRequest(
            f"input {spec.name!r} holds non-string data; expected BYTES as JSON strings"
        )
    _check_count(spec, shape, len(flat))
    array = np.empty(len(flat), dtype=object)
    array[:] = [item.encode("utf-8") for item in flat]
    return array.reshape(shape)


def _flatten(data: list) -> list:
    out: list = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _check_count(spec: TensorSpec, shape: tuple[int, ...], count: int) -> None:
    if count != math.prod(shape):
        raise BadRequest(
            f"input {spec.name!r} has {count} elements; expected {math.prod(shape)} "
            f"for shape {list(shape)}"
        )


def from_raw(spec: TensorSpec, shape: tuple[int, ...], raw: bytes | memoryview) -> np.ndarray:
    """The numpy array of a raw buffer (binary extension or gRPC raw contents)."""
    if spec.dtype == "bytes":
        items = deserialize_bytes(spec.name, raw, math.prod(shape))
        _check_count(spec, shape, len(items))
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = numpy_dtype(spec.dtype)
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise BadRequest(
            f"input {spec.name!r} has {len(raw)} bytes of binary data; expected {expected} "
            f"({spec.datatype}, shape {list(shape)})"
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)


def deserialize_bytes(name: str, raw: bytes | memoryview, count: int | None = None) -> list[bytes]:
    """Length-prefixed elements; with ``count`` (from the declared shape) the element count is
    checked
    before and while decoding, so a body of millions of empty strings is refused, not walked."""
    items, offset, view = [], 0, memoryview(raw)
    if count is not None and len(view) < 4 * count:
        raise BadRequest(
            f"input {name!r} has {len(view)} bytes of BYTES data; expected at least {4 * count} "
            f"for {count} elements (a 4-byte length before each)"
        )
    while offset < len(view):
        if count is not None and len(items) == count:
            raise BadRequest(
                f"input {name!r} has more than the {count} BYTES elements its shape declares"
            )
        if offset + 4 > len(view):
            raise BadRequest(
                f"input {name!r} has a truncated BYTES element at offset {offset}; "
                f"expected a 4-byte length before each element"
            )
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise BadRequest(
                f"input {name!r} has a BYTES element of {length} bytes past the end of its "
                f"data; expected each length to fit the buffer"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    return items


def to_raw(array: np.ndarray, datatype: str) -> bytes:
    """A numpy array as raw little-endian bytes (length-prefixed elements for BYTES)."""
    if datatype == "BYTES":
        parts = []
        for item in array.reshape(-1).tolist():
            data = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(array).tobytes()


def to_json_data(array: np.ndarray, datatype: str) -> list:
    if datatype == "BYTES":
        return [
            x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
            for x in array.reshape(-1).tolist()
        ]
    return array.reshape(-1).tolist()
