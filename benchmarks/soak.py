"""Soak test: `shipyard serve` under 32 closed-loop clients for a few minutes, loopback only.

The server runs in its own process (``shipyard serve PKG``, default limits); 32 client threads on
keep-alive HTTP connections send, in a fixed rotation, mostly good requests (binary FP32 digits
images, batch 1) and a share of hostile ones (malformed JSON, ``"parameters": 5``, a wrong dtype,
a body over ``--max-request-mb``, BYTES counts that lie about the shape). Recorded: requests and
throughput, answers by status, p50/p99 latency of the good requests, and the server's resident
memory (VmRSS) after warm-up and at the end, sampled every few seconds. The pass condition is flat
memory: the end RSS within 10 % (+16 MB) of the RSS after warm-up, and no 5xx.

    python benchmarks/soak.py [--package DIR] [--duration 180] [--clients 32] [--max-requests
    2000000]

Without ``--package`` it builds example:digits (ONNX Runtime). It writes its section of
docs/security.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
HOSTILE_EVERY = 10  # one request in ten is hostile
MAX_REQUEST_MB = 4  # the server's --max-request-mb here, so "too large" bodies stay cheap to send


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def requests_for(image: np.ndarray) -> list[tuple[str, bytes, dict]]:
    """(kind, body, headers): the good request first, then the hostile ones, in rotation."""
    raw = image.astype(np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "FP32",
                    "shape": list(image.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        }
    ).encode()
    good = ("good", header + raw, {"Inference-Header-Content-Length": str(len(header))})
    lying = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": 4000},
                }
            ]
        }
    ).encode()
    hostile = [
        ("malformed json", b'{"inputs": [' * 2000, {}),
        ("parameters 5", json.dumps({"inputs": [], "parameters": 5}).encode(), {}),
        (
            "wrong dtype",
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "image",
                            "datatype": "INT64",
                            "shape": list(image.shape),
                            "data": [0] * image.size,
                        }
                    ]
                }
            ).encode(),
            {},
        ),
        ("too large", b"{" + b" " * (MAX_REQUEST_MB * 2**20 + 1), {}),
        (
            "lying bytes",
            lying + struct.pack("<I", 0) * 1000,
            {"Inference-Header-Content-Length": str(len(lying))},
        ),
    ]
    return [good, *hostile]


class Client(threading.Thread):
    def __init__(
        self, port: int, model: str, menu: list, stop_at: float, budget: list[int], index: int
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.menu, self.stop_at, self.budget = (
            port,
            f"/v2/models/{model}/infer",
            menu,
            stop_at,
            budget,
        )
        self.count, self.statuses, self.latencies = index, Counter(), []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while time.time() < self.stop_at and self.budget[0] > 0:
            self.budget[0] -= 1
            self.count += 1
            hostile = self.count % HOSTILE_EVERY == 0
            kind, body, headers = (
                self.menu[1 + (self.count // HOSTILE_EVERY) % (len(self.menu) - 1)]
                if hostile
                else self.menu[0]
            )
            started = time.perf_counter()
            try:
                conn.request("POST", self.path, body, headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                status = "connection error" if kind == "good" else "closed (hostile)"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            if kind == "good" and status == 200:
                self.latencies.append(time.perf_counter() - started)
            self.statuses[(kind, status)] += 1


def run_soak(
    package: Path, duration: float, clients: int, max_requests: int, warmup: float
) -> dict:
    from shipyard.package.manifest import read_manifest

    model = read_manifest(package)["name"]
    image = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "serve",
            str(package),
            "--http-port",
            str(port),
            "--grpc-port",
            "-1",
            "--no-access-log",
            "--max-request-mb",
            str(MAX_REQUEST_MB),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, server)
        menu = requests_for(image)
        budget = [max_requests]
        threads = [
            Client(port, model, menu, time.time() + warmup, budget, i) for i in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss_start, samples = rss_mb(server.pid), []
        threads = [
            Client(port, model, menu, time.time() + duration, budget, i) for i in range(clients)
        ]
        started = time.time()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            samples.append(round(rss_mb(server.pid), 1))
        elapsed = time.time() - started
        rss_end = rss_mb(server.pid)
        live = _status(port, "/v2/health/live")
    finally:
        server.terminate()
        try:
            _, stderr = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    statuses = sum((t.statuses for t in threads), Counter())
    latencies = sorted(x for t in threads for x in t.latencies)
    total = sum(statuses.values())
    return {
        "model": model,
        "clients": clients,
        "seconds": elapsed,
        "requests": total,
        "good": sum(v for (k, _), v in statuses.items() if k == "good"),
        "throughput": total / elapsed,
        "statuses": {f"{k}: {s}": v for (k, s), v in sorted(statuses.items(), key=str)},
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_samples_mb": samples,
        "live_after": live,
        "traceback_on_exit": "Traceback" in stderr.decode(errors="replace"),
    }


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}"
            )
        if _status(port, "/v2/health/ready") == 200:
            return
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def _status(port: int, path: str) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None


def passed(result: dict) -> bool:
    flat = result["rss_end_mb"] <= 1.10 * result["rss_start_mb"] + 16
    no_5xx = not any(
        str(s).startswith("5") or "connection error" in k
        for k, s in (key.rsplit(": ", 1) for key in result["statuses"])
    )
    return flat and no_5xx and result["live_after"] == 200


def markdown(result: dict) -> str:
    from shipyard.machine import describe

    m = describe()
    rows = "\n".join(f"| {k} | {v} |" for k, v in result["statuses"].items())
    return f"""## Soak test (`benchmarks/soak.py`)

Machine: {m["cpu"]}, {m["cores"]} cores, flags {", ".join(m["cpu_flags"]) or "none"} (shared with
other
jobs while it ran); run {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. `shipyard serve` with
default
limits but `--max-request-mb {MAX_REQUEST_MB}`, model `{result["model"]}` (ONNX Runtime),
{result["clients"]} closed-loop HTTP clients on 127.0.0.1 for
{result["seconds"]:.0f} s; one request in {HOSTILE_EVERY} hostile.

| figure | value |
|---|---|
| requests | {result["requests"]} ({result["good"]} good), {result["throughput"]:.0f} requests/s |
| good requests p50 / p99 | {result["p50_ms"]:.1f} ms / {result["p99_ms"]:.1f} ms |
| server RSS after warm-up → end | {result["rss_start_mb"]:.1f} MB → {result["rss_end_mb"]:.1f} MB |
| RSS every 5 s (MB) | {", ".join(str(s) for s in result["rss_samples_mb"])} |
| `/v2/health/live` after the soak | {result["live_after"]} |
| traceback at shutdown | {"yes" if result["traceback_on_exit"] else "no"} |
| pass (flat RSS ≤ 1.1 × start + 16 MB, no 5xx, live) | {"PASS" if passed(result) else "FAIL"} |

Answers by request kind and status:

| kind: status | count |
|---|---|
{rows}
"""


def write_section(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Security\n"
    block = f"<!-- begin:soak -->\n{text.strip()}\n<!-- end:soak -->"
    pattern = re.compile(r"<!-- begin:soak -->.*?<!-- end:soak -->", re.S)
    doc = (
        pattern.sub(lambda _: block, doc)
        if pattern.search(doc)
        else doc.rstrip() + "\n\n" + block + "\n"
    )
    DOC.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path)
    parser.add_argument("--duration", type=float, default=180)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--warmup", type=float, default=15)
    args = parser.parse_args()
    package = args.package
    if package is None:
        import shipyard
        from shipyard.bench import BenchConfig

        package = Path(tempfile.mkdtemp(prefix="soak-")) / "digits"
        shipyard.build(
            "example:digits",
            out=package,
            backends=["onnxruntime"],
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    result = run_soak(package, args.duration, args.clients, args.max_requests, args.warmup)
    print(json.dumps(result, indent=1))
    write_section(markdown(result))
    print(f"wrote {DOC}: {'PASS' if passed(result) else 'FAIL'}")


if __name__ == "__main__":
    main()
