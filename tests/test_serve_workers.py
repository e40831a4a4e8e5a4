"""``shipyard serve --workers N``: several serving processes on one pair of ports, with counters
any of them answers for all, a dead worker started again, and a graceful stop of them all."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.serve_process import start_serve

pytestmark = pytest.mark.backend("tritonclient")

CLIENTS = 16


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc: no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def _server_sockets(port: int, state: str) -> set[str]:
    """Socket inodes whose local port is ``port`` in TCP ``state`` (``/proc/net/tcp``: 0A
    listening, 01 established)."""
    rows = [r.split() for r in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return {r[9] for r in rows if r[1].endswith(f":{port:04X}") and r[3] == state}


def _listening_inodes(port: int) -> set[str]:
    return _server_sockets(port, "0A")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _feed(module, package: Path, rows: int = 1):
    import shipyard

    spec = shipyard.load(package).signature.inputs[0]
    images = np.random.default_rng(rows).random((rows, *spec.shape[1:]), dtype=np.float32)
    feed = module.InferInput(spec.name, list(images.shape), "FP32")
    feed.set_data_from_numpy(images)
    return images, feed


def _wait_for(check, timeout_s: float = 60.0, what: str = "") -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def pool(digits_package):
    served = start_serve([digits_package], "--workers", "2", "--no-access-log")
    try:
        yield served
    finally:
        served.stop()


def test_every_worker_listens_and_answers_with_the_package_s_outputs(pool, digits_package):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    import shipyard

    workers = _children(pool.proc.pid)
    assert len(workers) == 2, workers
    listening = _listening_inodes(pool.http_port)
    assert all(_socket_inodes(w) & listening for w in workers), "a worker does not listen"
    assert "2 workers share both ports\n" in pool.out
    images, feed = _feed(httpclient, digits_package, 3)
    expected = shipyard.load(digits_package).run({feed.name(): images})["logits"]
    for _ in range(CLIENTS):  # fresh connections: the kernel hands them to both workers
        client = httpclient.InferenceServerClient(f"127.0.0.1:{pool.http_port}")
        got = client.infer("digits", [feed]).as_numpy("logits")
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        client.close()
    _, grpc_feed = _feed(grpcclient, digits_package, 3)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{pool.grpc_port}")
    got = client.infer("digits", [grpc_feed]).as_numpy("logits")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_statistics_and_metrics_count_every_worker_s_requests(pool, digits_package):
    """Connections held open at once land on both workers; whichever worker answers the
    statistics and /metrics requests, the counts are all the workers' together."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    url = f"127.0.0.1:{pool.http_port}"
    before = httpclient.InferenceServerClient(url).get_inference_statistics("digits")
    before = before["model_stats"][0]["inference_stats"]["success"]["count"]
    clients = [httpclient.InferenceServerClient(url) for _ in range(CLIENTS)]
    _, feed = _feed(httpclient, digits_package)
    for client in clients:
        client.infer("digits", [feed])
    owners = [w for w in _children(pool.proc.pid) if _socket_inodes(w) & _established(url)]
    assert len(owners) == 2, "the held connections all went to one worker"
    for _ in range(6):  # fresh connections each time: answered by either worker
        answer = httpclient.InferenceServerClient(url).get_inference_statistics("digits")
        assert answer["model_stats"][0]["inference_stats"]["success"]["count"] == before + CLIENTS
    answer = grpcclient.InferenceServerClient(f"127.0.0.1:{pool.grpc_port}")
    stats = answer.get_inference_statistics("digits", as_json=True)["model_stats"][0]
    assert int(stats["inference_stats"]["success"]["count"]) == before + CLIENTS
    assert int(stats["inference_count"]) >= before + CLIENTS
    assert _requests_metric(url) == before + CLIENTS  # every inference so far succeeded
    for client in clients:
        client.close()


def _established(url: str) -> set[str]:
    """Socket inodes of the server side of established connections to ``url``'s port."""
    return _server_sockets(int(url.rsplit(":", 1)[1]), "01")


def _requests_metric(url: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://{url}/metrics", timeout=10).read().decode()
    rows = [line for line in text.splitlines() if line.startswith("shipyard_requests_total{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in rows if 'model="digits"' in line)


def test_a_killed_worker_is_started_again_and_the_other_serves_meanwhile(pool, digits_package):
    import tritonclient.http as httpclient

    url = f"127.0.0.1:{pool.http_port}"
    first, second = _children(pool.proc.pid)
    killed = _socket_inodes(first) & _listening_inodes(pool.http_port)
    assert killed, "the worker holds no listening socket of the port"
    os.kill(first, signal.SIGKILL)
    # until the kernel has closed the dead worker's listening socket, it may still be handed
    # (and reset) a new connection
    _wait_for(lambda: not killed & _listening_inodes(pool.http_port), what="the socket to close")
    _, feed = _feed(httpclient, digits_package)
    for _ in range(4):  # new connections go to the worker still listening
        client = httpclient.InferenceServerClient(url)
        client.infer("digits", [feed])
        client.close()

    def replaced() -> bool:
        workers = _children(pool.proc.pid)
        listening = _listening_inodes(pool.http_port)
        return len(workers) == 2 and all(_socket_inodes(w) & listening for w in workers)

    _wait_for(replaced, what="the pool to start a new worker")
    assert second in _children(pool.proc.pid) and first not in _children(pool.proc.pid)
    assert any("worker 0 exited" in line or "worker 1 exited" in line for line in pool.err)


def test_sigterm_stops_every_worker_and_removes_the_shared_files(digits_package):
    served = start_serve([digits_package], "--workers", "2", "--no-access-log")
    workers = _children(served.proc.pid)
    plans = [Path(a) for w in workers for a in _arguments(w) if a.endswith(".json")]
    assert len(plans) == 2 and plans[0].parent == plans[1].parent
    served.proc.send_signal(signal.SIGTERM)
    out, _ = served.output()
    assert served.proc.returncode == 0 and out.rstrip().endswith("stopped")
    assert not any(Path(f"/proc/{w}").exists() for w in workers)
    assert not plans[0].parent.exists()


def _arguments(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_a_port_another_server_holds_is_refused_not_shared(digits_package):
    """SO_REUSEPORT would let a second server take half of a running one's connections: a plain
    server refuses to start on a taken gRPC port, and a pool on a taken HTTP port."""
    first = start_serve([digits_package], "--no-access-log")
    try:
        for flags in (
            ["--grpc-port", str(first.grpc_port)],
            ["--workers", "2", "--grpc-port", "0", "--http-port", str(first.http_port)],
        ):
            with pytest.raises(RuntimeError, match="did not start"):
                start_serve([digits_package], "--no-access-log", *flags, timeout_s=60)
    finally:
        first.stop()
