"""The garbage collector while ``shipyard serve`` runs: requests in flight do not set it off, what
was loaded is frozen out of its walks, and both are undone when the server stops."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from shipyard.backends.fake import write_fake_package
from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig
from shipyard.serve.heap import GEN0_THRESHOLD


def test_requests_in_flight_do_not_set_the_collector_off(tmp_path):
    options = ServeOptions(BatchConfig(max_batch_size=8, max_queue_delay_ms=1))
    server = Server(
        [write_fake_package(tmp_path / "fake")], ServerConfig(http_port=0, grpc_port=None), options
    )
    before = gc.get_threshold()
    collections = [0]

    def count(phase: str, info: dict) -> None:
        collections[0] += phase == "start"

    with server.running():
        assert gc.get_threshold()[0] >= GEN0_THRESHOLD and gc.get_freeze_count() > 0
        gc.callbacks.append(count)
        try:  # the client in its own process: its objects are not the server's
            load = subprocess.run(
                [sys.executable, "-m", "shipyard.cli.main", "loadtest", "--model", "fake"]
                + ["--concurrency", "16", "--max-requests", "6000", "--warmup", "0"]
                + [f"http://127.0.0.1:{server.http_port}"],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            gc.callbacks.remove(count)
    assert load.returncode == 0 and "6000 requests" in load.stdout and "errors 0" in load.stdout
    # with CPython's default threshold of 700 the same load collects about ten times
    assert collections[0] <= 3
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


@pytest.fixture(autouse=True)
def _collector_as_found():
    yield
    gc.unfreeze()
