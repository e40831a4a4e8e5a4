"""Checked KServe v2 request headers, remembered by their bytes, and the response JSON they lead to.

A client sending binary tensors repeats the same JSON header on every request (names, datatypes,
shapes, byte counts); only the binary data after it changes. Parsing and checking that header is
most of the cost of decoding a small request, so :func:`plan_for` keeps, per model, the last
``MAX_PLANS`` headers that passed every check, as a :class:`Plan`: the parsed header, the requested
outputs and, per input, its spec, shape and byte range. Only all-binary headers of at most
``MAX_HEADER_BYTES`` are kept (a header with JSON ``data`` is its data, and rarely repeats).

The parsed header is a :class:`PlannedHeader` (a ``dict``) that also remembers the response JSON
written for it per output shapes (:func:`cached_response_json`): with binary outputs that text is
the same on every request of a given shape. Cached objects are shared between requests and are
never modified after they are stored.

Example::

    >>> plan = plan_for(model, header_bytes, max_bytes)  # doctest: +SKIP
    >>> inputs = plan.inputs(binary) if plan else None    # doctest: +SKIP
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.records import TensorSpec
from shipyard.serve import tensors

MAX_PLANS = 32
"""Headers remembered per model (least recently used first out)."""
MAX_HEADER_BYTES = 4096
MAX_RESPONSES = 16
"""Response JSON texts remembered per header (one per distinct output shapes)."""


class PlannedHeader(dict):
    """A parsed request header that also keeps the response JSON written for it."""

    __slots__ = ("responses",)

    def __init__(self, parsed: dict[str, Any]) -> None:
        super().__init__(parsed)
        self.responses: dict[tuple, bytes] = {}


@dataclass(frozen=True)
class InputSlice:
    spec: TensorSpec
    shape: tuple[int, ...]
    start: int
    stop: int


@dataclass(frozen=True)
class Plan:
    """What a checked header says: every input's place in the binary data, and the outputs."""

    header: PlannedHeader
    outputs: list[dict[str, Any]] | None
    slices: tuple[InputSlice, ...]
    binary_bytes: int

    def inputs(self, binary: memoryview) -> dict[str, np.ndarray] | None:
        """The request's arrays, or None when the binary data is not the size the header says
        (the full decoder then explains what is wrong)."""
        if len(binary) != self.binary_bytes:
            return None
        return {
            s.spec.name: tensors.from_raw(s.spec, s.shape, binary[s.start : s.stop])
            for s in self.slices
        }


_LOCK = threading.Lock()  # decoding also runs in the decode pool's threads
_PLANS: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[bytes, int], Plan]] = (
    weakref.WeakKeyDictionary()
)


def plan_for(model: Any, header_bytes: bytes, max_bytes: int) -> Plan | None:
    """The remembered plan of this exact header for ``model``, if any."""
    with _LOCK:
        plans = _PLANS.get(model)
        if plans is None:
            return None
        plan = plans.get((header_bytes, max_bytes))
        if plan is not None:
            plans.move_to_end((header_bytes, max_bytes))
        return plan


def remember(
    model: Any,
    header_bytes: bytes,
    max_bytes: int,
    header: dict[str, Any],
    outputs: list[dict[str, Any]] | None,
    binary_bytes: int,
) -> PlannedHeader | None:
    """Keep the plan of a header that passed every check; returns the header to use from now on
    (None when this header is not one to keep)."""
    if len(header_bytes) > MAX_HEADER_BYTES:
        return None
    slices, offset = [], 0
    for entry in header["inputs"]:
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is None:  # JSON data: the header is the data
            return None
        spec = model.input_spec(entry["name"])
        shape = tensors.check_header(spec, entry.get("datatype"), entry.get("shape"), max_bytes)
        slices.append(InputSlice(spec, shape, offset, offset + size))
        offset += size
    if offset != binary_bytes:
        return None
    planned = PlannedHeader(header)
    with _LOCK:
        plans = _PLANS.setdefault(model, OrderedDict())
        plans[(header_bytes, max_bytes)] = Plan(planned, outputs, tuple(slices), offset)
        if len(plans) > MAX_PLANS:
            plans.popitem(last=False)
    return planned


def cached_response_json(header: dict[str, Any], key: tuple, make: Callable[[], bytes]) -> bytes:
    """``make()``, remembered under ``key`` when ``header`` is a :class:`PlannedHeader`."""
    responses = getattr(header, "responses", None)
    if responses is None:
        return make()
    text = responses.get(key)
    if text is None:
        text = make()
        if len(responses) < MAX_RESPONSES:
            responses[key] = text
    return text
