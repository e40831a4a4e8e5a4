"""The gRPC side of ``shipyard loadtest``: every client a coroutine on one ``grpc.aio`` loop.

A thread per client with ``tritonclient.grpc`` builds the protobuf, serializes it and parses every
answer in Python, and passes the GIL between 16–32 threads: on a two-core machine that is CPU taken
from the server being measured. Here the ``ModelInfer`` request is serialized once, the answers are
taken as bytes, and each client has a connection of its own (as separate processes would), so the
client costs the machine little more than gRPC's own C core, as perf_analyzer's does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb

from shipyard.serve.loadtest import th_datatype
from shipyard.serve.loadtest_http import ANSWER_GRACE_S, Tally
from shipyard.serve.tensors import to_raw

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
CALL_TIMEOUT_S = 120.0
"""A call's deadline, and at most :data:`ANSWER_GRACE_S` past the run's end, as over HTTP."""


def grpc_request(model: str, inputs: dict[str, np.ndarray]) -> bytes:
    """A serialized KServe v2 ``ModelInferRequest`` carrying ``inputs`` as raw contents."""
    request = pb.ModelInferRequest(model_name=model)
    for name, array in inputs.items():
        datatype = th_datatype(array)
        request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        request.raw_input_contents.append(to_raw(array, datatype))
    return request.SerializeToString()


def drive_grpc(target: str, wire: bytes, concurrency: int, tally: Tally) -> None:
    """``concurrency`` closed-loop clients sending ``wire`` to ``target`` (``host:port``) until
    ``tally.stop_at`` or until it is full."""
    asyncio.run(_drive(target, wire, concurrency, tally))


async def _drive(target: str, wire: bytes, concurrency: int, tally: Tally) -> None:
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(_client(channel, wire, tally) for channel in channels))
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


async def _client(channel: Any, wire: bytes, tally: Tally) -> None:
    infer = channel.unary_unary(INFER_METHOD)  # no (de)serializers: bytes in, bytes out
    while (began := time.perf_counter()) < tally.stop_at and not tally.full:
        try:
            await infer(wire, timeout=min(CALL_TIMEOUT_S, tally.stop_at - began + ANSWER_GRACE_S))
            failed = None
        except grpc.aio.AioRpcError as exc:
            failed = exc.code().name
        tally.record(began, time.perf_counter(), failed)
