"""TensorFlow Serving's API on `shipyard serve`: what the protos cost at start, and what each face
costs per request.

1. Loading the TF Serving gRPC protos as the server does (TensorFlow's ``_pb2`` modules without its
   runtime) against a plain ``import`` of them (which runs ``tensorflow/__init__``), each in a fresh
   process, alternating over ``--rounds``; medians of wall time and peak RSS.
2. One client, one sample per request, on the example:digits ONNX Runtime package: KServe v2 JSON
   and TF Serving REST (row format) over HTTP, KServe v2 and TF Serving ``Predict`` over gRPC, in
   alternating blocks of ``--block`` requests; medians of the per-block p50.

    python benchmarks/tfserving.py [--package DIR] [--rounds 5] [--block 200]

Writes the `tfserving` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, markdown_table, write_section

LOAD = {
    "bare tensorflow package (what the server does)": "from shipyard.serve.tfserving_protos import "
    "load_protos; load_protos()",
    "plain import (runs tensorflow/__init__)": "from tensorflow_serving.apis import "
    "prediction_service_pb2_grpc, model_service_pb2_grpc",
}
PROBE = (
    "import resource, sys, time; t = time.perf_counter(); exec(sys.argv[1]); "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
    "'tensorflow' in sys.modules)"
)


def measure_loading(rounds: int) -> list[list[str]]:
    seen: dict[str, list[tuple[float, float, bool]]] = {name: [] for name in LOAD}
    for _ in range(rounds):
        for name, code in LOAD.items():
            out = subprocess.run(
                [sys.executable, "-c", PROBE, code], capture_output=True, text=True, check=True
            )
            seconds, mb, runtime = out.stdout.split()[-3:]
            seen[name].append((float(seconds), float(mb), runtime == "True"))
    return [
        [
            name,
            f"{statistics.median(s for s, _, _ in v):.2f}",
            f"{statistics.median(m for _, m, _ in v):.0f}",
            "yes" if v[0][2] else "no",
        ]
        for name, v in seen.items()
    ]


def build_digits() -> Path:
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build

    out = Path(tempfile.mkdtemp()) / "digits"
    build(
        BuildOptions.create(
            "example:digits",
            out=out,
            backends=["onnxruntime"],
            threads=1,
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    )
    return out


def callers(server, x: np.ndarray) -> dict:
    import grpc
    import tritonclient.grpc as tg

    from shipyard.serve.tfserving_protos import load_protos

    conn = [http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)]
    kserve_body = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "data": x.reshape(-1).tolist(),
                }
            ]
        }
    )
    tfs_body = json.dumps({"instances": x.tolist()})

    def post(path: str, body: str) -> None:
        try:
            conn[0].request("POST", path, body, {"Content-Type": "application/json"})
        except (
            BrokenPipeError,
            ConnectionResetError,
        ):  # the server closed the idle keep-alive connection
            conn[0] = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
            conn[0].request("POST", path, body, {"Content-Type": "application/json"})
        reply = conn[0].getresponse()
        assert reply.status == 200, reply.read()
        reply.read()

    triton = tg.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    tensor = tg.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    tfs = load_protos()
    stub = tfs.prediction_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    )
    request = tfs.predict.PredictRequest()
    request.model_spec.name = "digits"
    proto = request.inputs["image"]
    proto.dtype = tfs.types.DT_FLOAT
    for size in x.shape:
        proto.tensor_shape.dim.add(size=size)
    proto.tensor_content = x.tobytes()
    return {
        "KServe v2 HTTP JSON": lambda: post("/v2/models/digits/infer", kserve_body),
        "TF Serving REST (instances)": lambda: post("/v1/models/digits:predict", tfs_body),
        "KServe v2 gRPC (tritonclient)": lambda: triton.infer("digits", [tensor]),
        "TF Serving gRPC Predict": lambda: stub.Predict(request, timeout=30),
    }


def measure_requests(package: Path, rounds: int, block: int) -> list[list[str]]:
    from shipyard.serve import Server, ServerConfig

    x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    server = Server([package], ServerConfig(http_port=0, grpc_port=0))
    p50s: dict[str, list[float]] = {}
    with server.running():
        calls = callers(server, x)
        for _ in range(rounds):
            for name, call in calls.items():
                times = []
                for _ in range(block):
                    started = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - started)
                p50s.setdefault(name, []).append(statistics.median(times[block // 10 :]) * 1000)
    base = statistics.median(p50s["KServe v2 HTTP JSON"])
    return [
        [name, f"{statistics.median(v):.3f}", f"{statistics.median(v) / base:.2f}"]
        for name, v in p50s.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--package", type=Path, help="an example:digits package (built here when omitted)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=200)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    loading = measure_loading(args.rounds)
    requests = measure_requests(args.package or build_digits(), args.rounds, args.block)
    write_section(
        "tfserving",
        "\n\n".join(
            [
                "## TensorFlow Serving API (`benchmarks/tfserving.py`)",
                machine_line(1)
                + f" Load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}.",
                f"Loading the TF Serving gRPC protos in a fresh process, median of {args.rounds} "
                "alternating runs:",
                markdown_table(
                    ["how", "seconds", "peak RSS MB", "TensorFlow runtime imported"], loading
                ),
                (
                    "One client, one digits sample per request (ONNX Runtime package), "
                    f"{args.rounds} alternating blocks "
                    f"of {args.block} requests, median of the blocks' p50 (first 10 % of each "
                    "block dropped):"
                ),
                markdown_table(["face", "p50 ms", "vs KServe HTTP JSON"], requests),
            ]
        ),
    )
    print(
        (Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md")
        .read_text()
        .split("begin:tfserving")[1]
    )


if __name__ == "__main__":
    main()
