"""``shipyard serve --workers N``: N serving processes behind one HTTP and one gRPC port.

One event loop answers a few thousand small requests a second on one core; a model whose batch
costs far less than its requests' HTTP and gRPC handling leaves the other cores idle while the
loop is saturated. Each worker is a whole :class:`~shipyard.serve.Server` with its own models and
batcher. The kernel spreads new connections across the workers (``SO_REUSEPORT``); the Triton
statistics and the Prometheus metrics live in files every worker shares, so any worker answers
for all of them; the pool restarts a worker that dies and stops them all on SIGINT/SIGTERM.
Limits (connections, bytes in flight, queue length) hold per worker.

Example::

    >>> pool = WorkerPool(["pkgs/digits"], ServerConfig(http_port=8000), ServeOptions(), 2)
    >>> pool.run(on_ready=print)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import UsageError
from shipyard.serve.accesslog import print_access_log
from shipyard.serve.batcher import BatchConfig
from shipyard.serve.metrics import MULTIPROCESS_FOLDER
from shipyard.serve.ports import shared_port_socket
from shipyard.serve.repository import ServeOptions
from shipyard.serve.server import Server, ServerConfig
from shipyard.serve.stats import SharedStats

MAX_RESTARTS = 5
"""Restarts of dead workers within ``RESTART_WINDOW_S`` before the pool gives up."""
RESTART_WINDOW_S = 60.0
POLL_S = 0.1


@dataclass
class WorkerPlan:
    """What one worker process serves, and where it shares its counters (sent as JSON)."""

    folders: list[str]
    config: ServerConfig
    options: ServeOptions
    shared_folder: str
    slot: int
    access_log: bool = True

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerPlan:
        data = json.loads(text)
        options = data["options"]
        return cls(
            data["folders"],
            ServerConfig(**data["config"]),
            ServeOptions(**{**options, "batch": BatchConfig(**options["batch"])}),
            data["shared_folder"],
            data["slot"],
            data["access_log"],
        )


@dataclass
class PoolReady:
    """What the pool serves once every worker accepts connections."""

    models: list[str]
    http_port: int
    grpc_port: int | None
    workers: int
    layouts: dict[str, str] = field(default_factory=dict)
    """Each model's instances × threads in every worker."""


def per_worker_options(options: ServeOptions, workers: int) -> ServeOptions:
    """The cores split between the workers: ``--instances auto`` would have every worker time
    its layouts at once, against each other, so each worker runs one instance on its share of
    the cores unless the user fixed instances or threads."""
    from shipyard.machine import usable_cores

    threads = options.threads or max(1, usable_cores() // workers)
    instances = options.batch.instances or 1
    return dataclasses.replace(
        options, threads=threads, batch=dataclasses.replace(options.batch, instances=instances)
    )


class WorkerPool:
    """``workers`` serving processes of the packages in ``folders`` on the ports of ``config``."""

    def __init__(
        self,
        folders: list[str | Path],
        config: ServerConfig,
        options: ServeOptions,
        workers: int,
        access_log: bool = True,
    ) -> None:
        if workers < 2:
            raise UsageError(f"a worker pool has {workers} workers; expected 2 or more")
        self.folders = [str(Path(f).resolve()) for f in folders]
        self.config, self.workers, self.access_log = config, workers, access_log
        self.options = per_worker_options(options, workers)
        self._stop = threading.Event()
        self._processes: dict[int, subprocess.Popen] = {}
        self._restarts: list[float] = []

    def run(self, on_ready: Callable[[PoolReady], None] | None = None) -> None:
        """Serve until SIGINT/SIGTERM or ``stop()``; every worker stops gracefully."""
        handlers = self._catch_signals()
        try:
            with tempfile.TemporaryDirectory(prefix="shipyard-workers-") as shared:
                self._serve(Path(shared), on_ready)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        self._stop.set()

    def _catch_signals(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {
            sig: signal.signal(sig, lambda *_: self.stop())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _serve(self, shared: Path, on_ready: Callable[[PoolReady], None] | None) -> None:
        (shared / "stats").mkdir()
        (shared / "prometheus").mkdir()
        # held open (bound, never listening) while the workers run: the ports stay the pool's
        held = [shared_port_socket(self.config.host, self.config.http_port)]
        if self.config.grpc_port is not None:
            held.append(shared_port_socket(self.config.host, self.config.grpc_port))
        config = dataclasses.replace(
            self.config,
            http_port=held[0].getsockname()[1],
            grpc_port=held[1].getsockname()[1] if len(held) > 1 else None,
            reuse_port=True,
        )
        try:
            for slot in range(self.workers):
                self._start(shared, config, slot)
            ready = self._wait_ready(shared, config)
            if ready is not None and on_ready is not None:
                on_ready(ready)
            if ready is not None:
                self._supervise(shared, config)
        finally:
            self._stop_all(config.graceful_timeout_s)
            for sock in held:
                sock.close()

    def _start(self, shared: Path, config: ServerConfig, slot: int) -> None:
        plan = WorkerPlan(self.folders, config, self.options, str(shared), slot, self.access_log)
        (shared / f"ready.{slot}.json").unlink(missing_ok=True)
        plan_file = shared / f"plan.{slot}.json"
        plan_file.write_text(plan.to_json())
        env = {**os.environ, MULTIPROCESS_FOLDER: str(shared / "prometheus")}
        command = [sys.executable, "-m", "shipyard.serve.workers", str(plan_file)]
        self._processes[slot] = subprocess.Popen(command, env=env)

    def _wait_ready(self, shared: Path, config: ServerConfig) -> PoolReady | None:
        """What the workers serve once all of them accept connections; None if stopped first."""
        while True:
            files = [shared / f"ready.{slot}.json" for slot in range(self.workers)]
            if all(f.exists() for f in files):
                first = json.loads(files[0].read_text())
                return PoolReady(
                    first["models"],
                    config.http_port,
                    config.grpc_port,
                    self.workers,
                    first["layouts"],
                )
            for slot, process in self._processes.items():
                if process.poll() is not None:
                    raise UsageError(
                        f"worker {slot} exited with code {process.returncode} before serving; "
                        f"its error is printed above"
                    )
            if self._stop.wait(POLL_S):
                return None

    def _supervise(self, shared: Path, config: ServerConfig) -> None:
        while not self._stop.wait(POLL_S):
            for slot, process in list(self._processes.items()):
                if process.poll() is None or self._stop.is_set():
                    continue
                self._forget(shared, process.pid)
                self._count_restart(slot, process.returncode)
                logging.getLogger("shipyard.serve").warning(
                    "worker %d exited with code %s; starting it again", slot, process.returncode
                )
                self._start(shared, config, slot)

    def _count_restart(self, slot: int, code: int | None) -> None:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self._restarts) > MAX_RESTARTS:
            raise UsageError(
                f"workers died {len(self._restarts)} times within {RESTART_WINDOW_S:g} s "
                f"(worker {slot} last, code {code}); expected them to keep serving: see the "
                f"errors above"
            )

    @staticmethod
    def _forget(shared: Path, pid: int) -> None:
        """Drop a dead worker's live gauges (its counters stay: they still count)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(shared / "prometheus"))

    def _stop_all(self, graceful_s: float) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + graceful_s + 10
        for process in self._processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _write_ready(plan: WorkerPlan, server: Server) -> None:
    models = server.state.repository.all()
    ready = {
        "models": sorted(m.name for m in models),
        "layouts": {m.name: m.layout.describe() for m in models if m.layout is not None},
    }
    path = Path(plan.shared_folder) / f"ready.{plan.slot}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(ready))
    partial.replace(path)  # the pool never reads half a file


def _stop_when_orphaned(server: Server) -> None:
    """A worker whose pool died (even by SIGKILL) stops instead of serving on alone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        server.stop()

    threading.Thread(target=watch, name="pool-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """One worker: ``python -m shipyard.serve.workers PLAN.json``."""
    plan = WorkerPlan.from_json(Path(argv[0]).read_text())
    if plan.access_log:
        print_access_log()
    shared = SharedStats(Path(plan.shared_folder) / "stats", plan.slot)
    server = Server(plan.folders, plan.config, plan.options, shared)
    _stop_when_orphaned(server)
    server.run(on_ready=lambda s: _write_ready(plan, s))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
