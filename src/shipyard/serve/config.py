"""Triton's model configuration of a served model, as ``get_model_config`` gets it over HTTP and
gRPC.

The config comes from the builder ``shipyard export triton`` writes ``config.pbtxt`` with, filled
in with what this server enforces: its batch limit, its current queue delay, its instances and
their runtime threads (parameter ``threads``). Its inputs and outputs are the ones clients send
here (a text package takes BYTES text), and its backend is ``shipyard`` with the model metadata's
platform, because Shipyard runs the model here, not one of Triton's backends.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from shipyard.serve.repository import ServedModel
from shipyard.triton_config import TritonOptions, model_text, parameter, parse_config

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def model_config(model: ServedModel) -> Any:
    """``model``'s Triton ``ModelConfig`` message."""
    options = TritonOptions(
        max_batch_size=model.max_batch,
        max_queue_delay_us=round(model.batcher.delay_s * 1e6),
        instances=len(model.predictors),
        dynamic_batching=model.proof.batched,
    )
    threads = [parameter("threads", model.threads)]
    return parse_config(
        model_text(model.name, "shipyard", model.platform, model.signature, options, threads)
    )


def config_json(model: ServedModel) -> dict[str, Any]:
    """``model``'s config as Triton's HTTP endpoint answers it: proto field names, every plain
    field."""
    message = model_config(model)
    try:
        data = json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    except TypeError:  # protobuf < 5.26 names the option differently
        data = json_format.MessageToDict(
            message, preserving_proto_field_name=True, including_default_value_fields=True
        )
    return _int64_as_numbers(data, message.DESCRIPTOR)


def _int64_as_numbers(data: dict[str, Any], descriptor: Any) -> dict[str, Any]:
    """JSON numbers for 64-bit fields (``dims``, queue delays), which ``json_format`` writes as
    strings.

    Triton answers them as numbers, and clients index ``dims`` as integers.
    """
    for key, value in data.items():
        field = descriptor.fields_by_name[key]
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            data[key] = {k: _number(v, entry.fields_by_name["value"]) for k, v in value.items()}
        elif isinstance(value, list):
            data[key] = [_number(v, field) for v in value]
        else:
            data[key] = _number(value, field)
    return data


def _number(value: Any, field: Any) -> Any:
    if field.message_type is not None:
        return _int64_as_numbers(value, field.message_type)
    return int(value) if field.type in _INT64 else value
