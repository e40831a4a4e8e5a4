"""Triton's model configuration of a model, as text: written by ``export triton``, answered by
``serve``.

``shipyard export triton`` writes it as ``config.pbtxt``; ``shipyard serve`` answers it (parsed by
:func:`parse_config`) to ``get_model_config``, so both describe a model the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.errors import PackageError
from shipyard.records import Signature, TensorSpec

_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}


@dataclass
class TritonOptions:
    """What goes into the ``config.pbtxt`` beyond the package's own signature."""

    max_batch_size: int = 32
    max_queue_delay_us: int = 2000
    instances: int | None = 1
    """None: measure the fastest instances × threads on this machine (``--instances auto``)."""
    threads: int | None = None
    python_backend: bool = False
    """Export through Triton's Python backend even where a native backend runs the artifact."""
    trust_code: bool = False
    """Consent to export a package that carries code (custom-op Python, pickles, compiled libraries)
    for Triton's Python backend to load (see ``shipyard.package.trust``)."""
    dynamic_batching: bool = True
    """False: Triton runs every request alone (a model whose batch's rows are not its samples'
    own answers, :mod:`shipyard.verify.batchaxis`); requests keep their batch axis."""


def model_text(
    name: str,
    backend: str,
    platform: str,
    signature: Signature,
    options: TritonOptions,
    engine: list[str] | None = None,
) -> str:
    """A model's config in Triton's text format: tensors, batching and instances, plus ``engine``
    lines.

    ``shipyard export triton`` writes it as ``config.pbtxt``; ``shipyard serve`` answers it (parsed
    by :func:`parse_config`) to ``get_model_config``, so both describe a model the same way.
    """
    batched = signature.batched
    lines = [f'name: "{name}"', f'backend: "{backend}"']
    lines += [f'platform: "{platform}"'] if platform else []
    lines += list(engine or []) + [f"max_batch_size: {options.max_batch_size if batched else 0}"]
    lines += [
        _tensors("input", signature.inputs, batched),
        _tensors("output", signature.outputs, batched),
    ]
    if batched and options.dynamic_batching:
        lines.append(
            f"dynamic_batching {{ max_queue_delay_microseconds: {options.max_queue_delay_us} }}"
        )
    lines.append(f"instance_group [ {{ count: {options.instances} kind: KIND_CPU }} ]")
    return "\n".join(lines) + "\n"


def _tensors(kind: str, specs: tuple[TensorSpec, ...], batched: bool) -> str:
    entries = []
    for spec in specs:
        dims = spec.kserve_shape[1:] if batched else spec.kserve_shape
        # Triton refuses empty dims: one value per sample is dims [1] reshaped to no dims, as its
        # docs do
        shape = (
            f"dims: [ {', '.join(str(d) for d in dims)} ]"
            if dims
            else "dims: [ 1 ] reshape: { shape: [ ] }"
        )
        entries.append(f'  {{ name: "{spec.name}" data_type: {_TYPES[spec.datatype]} {shape} }}')
    return f"{kind} [\n" + ",\n".join(entries) + "\n]"


def parameter(key: str, value: object) -> str:
    return f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}'


def parse_config(text: str) -> Any:
    """``text`` parsed as Triton's ``ModelConfig`` message; needs ``tritonclient[grpc]``."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:  # a bug of ours, never the user's
        raise PackageError(
            f"the Triton config we wrote does not parse as ModelConfig: {exc}"
        ) from exc


def check_schema(text: str) -> None:
    """Parse ``text`` as Triton's ``ModelConfig`` when tritonclient is installed."""
    try:
        import tritonclient.grpc.model_config_pb2  # noqa: F401
    except ImportError:
        return
    parse_config(text)
