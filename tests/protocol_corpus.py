"""Good and malformed KServe v2 HTTP inference requests for one FP32 input, the same kinds the
serving tests send (``test_serve_protocol.BAD_REQUESTS``), for comparing ``shipyard serve`` with a
real Triton answering the same model (``test_export_triton_server``,
``benchmarks/triton_protocol.py``)."""

from __future__ import annotations

import http.client
import json
import math
from dataclasses import dataclass


@dataclass
class Case:
    kind: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Answer:
    status: int
    message: str


def corpus(name: str, sample: tuple[int, ...], max_batch: int) -> list[Case]:
    """Every request kind against input ``name`` (FP32, ``sample`` per sample, up to
    ``max_batch``)."""
    count = math.prod(sample)

    def tensor(**overrides):
        return {
            "name": name,
            "datatype": "FP32",
            "shape": [1, *sample],
            "data": [0.5] * count,
            **overrides,
        }

    def body(*inputs, **extra):
        return json.dumps({"inputs": list(inputs), **extra}).encode()

    def binary(declared: int, sent: int) -> tuple[bytes, dict[str, str]]:
        entry = tensor(parameters={"binary_data_size": declared})
        del entry["data"]  # the binary extension: the data follows the JSON header
        header = body(entry)
        return header + b"\0" * sent, {"Inference-Header-Content-Length": str(len(header))}

    cases = [
        ("good request", body(tensor()), {}),
        ("malformed json", b'{"inputs": [', {}),
        ("no inputs", json.dumps({"outputs": []}).encode(), {}),
        ("unknown input", body(tensor(name="z")), {}),
        ("missing input", body(), {}),
        ("duplicate input", body(tensor(), tensor()), {}),
        ("wrong datatype", body(tensor(datatype="INT64", data=[1] * count)), {}),
        ("unknown datatype", body(tensor(datatype="FLOAT")), {}),
        ("wrong rank", body(tensor(shape=[1, count])), {}),
        (
            "wrong fixed dim",
            body(
                tensor(
                    shape=[1, *sample[:-1], sample[-1] - 1],
                    data=[0.5] * (count - count // sample[-1]),
                )
            ),
            {},
        ),
        ("negative dim", body(tensor(shape=[-1, *sample])), {}),
        ("shape not ints", body(tensor(shape=["1", *sample])), {}),
        ("element count", body(tensor(data=[0.5] * (count - 1))), {}),
        ("non-numeric", body(tensor(data=["a"] + [0.5] * (count - 1))), {}),
        ("ragged data", body(tensor(data=[[0.5] * 2, [0.5]])), {}),
        ("data not a list", body(tensor(data="0.5")), {}),
        ("unknown output", body(tensor(), outputs=[{"name": "nope"}]), {}),
        (
            "batch over max",
            body(tensor(shape=[max_batch + 1, *sample], data=[0.5] * count * (max_batch + 1))),
            {},
        ),
        ("zero batch", body(tensor(shape=[0, *sample], data=[])), {}),
        ("huge shape", body(tensor(shape=[10**12, *sample])), {}),
        ("binary size past body", *binary(count * 4, count * 2)),
        ("binary size short of body", *binary(count * 4, count * 4 + 8)),
        ("binary wrong byte count", *binary(count * 4 - 4, count * 4 - 4)),
        ("bad header length", body(tensor()), {"Inference-Header-Content-Length": "99999"}),
        ("unknown encoding", body(tensor()), {"Content-Encoding": "br"}),
    ]
    return [Case(kind, data, headers) for kind, data, headers in cases]


def send(port: int, model: str, case: Case) -> Answer:
    """POST ``case`` to ``/v2/models/{model}/infer`` on 127.0.0.1:``port``; the status and error
    text."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            f"/v2/models/{model}/infer",
            case.body,
            {"Content-Type": "application/octet-stream", **case.headers},
        )
        response = conn.getresponse()
        payload = response.read()
    except (http.client.HTTPException, OSError) as exc:  # a server may drop the connection instead
        return Answer(0, f"no HTTP answer: {type(exc).__name__}")
    finally:
        conn.close()
    try:
        message = json.loads(payload).get("error", "") if response.status != 200 else ""
    except (ValueError, AttributeError):
        message = payload[:200].decode(errors="replace")
    return Answer(response.status, str(message))
