"""One process serving a model repository over KServe v2 HTTP and gRPC on one event loop.

Example::

    >>> from shipyard.serve import Server, ServerConfig
    >>> config = ServerConfig(http_port=8000, grpc_port=8001)
    >>> server = Server(["pkgs/digits"], config)  # doctest: +SKIP
    >>> server.run()  # doctest: +SKIP

``Server.start_in_thread()`` runs it in the background (tests, benchmarks) and returns once both
ports answer; ``stop()`` shuts it down gracefully: no new connections, in-flight requests finish,
queued requests are run, then the models are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import UsageError
from shipyard.serve.connections import ConnectionLimits, protocol_class
from shipyard.serve.heap import serving_collector
from shipyard.serve.limits import check_options
from shipyard.serve.metrics import Metrics
from shipyard.serve.repository import Repository, ServeOptions
from shipyard.serve.state import ServerState
from shipyard.serve.stats import SharedStats


@dataclass
class ServerConfig:
    """Where to listen; a port of 0 picks a free one, ``grpc_port=None`` turns gRPC off."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int | None = 8001
    graceful_timeout_s: float = 30.0
    log_level: str = "warning"
    reuse_port: bool = False
    """Share both ports with other processes (``SO_REUSEPORT``; ``shipyard serve --workers``)."""


class Server:
    """KServe v2 over HTTP and gRPC for every package in ``folders``."""

    def __init__(
        self,
        folders: list[str | Path],
        config: ServerConfig | None = None,
        options: ServeOptions | None = None,
        shared: SharedStats | None = None,
    ) -> None:
        if not folders:
            raise UsageError("no packages to serve; expected at least one package directory")
        self.config = config or ServerConfig()
        self.options = options or ServeOptions()
        check_options(
            self.options
        )  # before any package loads: a zero limit would refuse every request
        self.metrics = Metrics(shared, self.options.batch.max_batch_size)
        self.state = ServerState(
            Repository.load(list(folders), self.options, self.metrics), self.metrics, self.options
        )
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self._uvicorn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_ready: Callable[[Server], None] | None = None

    def run(self, on_ready: Callable[[Server], None] | None = None) -> None:
        """Serve until SIGINT/SIGTERM or ``stop()``, then shut down gracefully.

        ``on_ready(server)`` is called once both front ends accept connections, when
        ``http_port`` and ``grpc_port`` hold the bound ports (a configured port of 0 picks one).
        """
        self._on_ready = on_ready
        main = self._serve(handle_signals=threading.current_thread() is threading.main_thread())
        factory = _loop_factory()
        with serving_collector():
            if factory is None or not hasattr(asyncio, "Runner"):
                asyncio.run(main)
                return
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(main)

    async def _serve(self, handle_signals: bool) -> None:
        import uvicorn

        from shipyard.serve.http import make_app

        self._loop = asyncio.get_running_loop()
        self.state.repository.start()
        grpc_server = await self._start_grpc()
        limits = ConnectionLimits(self.options.max_connections, self.options.header_timeout_s)
        app = make_app(self.state)
        config = uvicorn.Config(
            app,
            host=self.config.host,
            port=self.config.http_port,
            log_level=self.config.log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=self.config.graceful_timeout_s,
            http=protocol_class(limits, app.endpoint),
            limit_concurrency=self.options.max_connections,
            timeout_keep_alive=limits.keep_alive_s,
            # no "server: uvicorn": it names the software and is one more header line for every
            # client to parse (Triton sends none); the Date header stays, as HTTP asks
            server_header=False,
        )
        self._uvicorn = _QuietSignals(config)
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self.stop)
        watcher = asyncio.create_task(self._mark_started())
        sockets = None
        if self.config.reuse_port:
            from shipyard.serve.ports import shared_port_socket

            sockets = [shared_port_socket(self.config.host, self.config.http_port)]
        try:
            await self._uvicorn.serve(sockets=sockets)
        finally:
            watcher.cancel()
            self.state.ready = False
            if grpc_server is not None:
                await grpc_server.stop(self.config.graceful_timeout_s)
            await self.state.repository.stop()
            self._started.set()

    async def _start_grpc(self) -> Any:
        if self.config.grpc_port is None:
            return None
        from shipyard.serve.grpc import make_server

        server, self.grpc_port = make_server(
            self.state, f"{self.config.host}:{self.config.grpc_port}", self.config.reuse_port
        )
        await server.start()
        return server

    async def _mark_started(self) -> None:
        while not self._uvicorn.started:
            await asyncio.sleep(0.01)
        sockets = [s for server in self._uvicorn.servers for s in server.sockets]
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http_port
        self.state.ready = True
        self._started.set()
        if self._on_ready is not None:
            self._on_ready(self)

    def stop(self) -> None:
        """Ask the server to shut down gracefully; safe from any thread and from signal handlers."""
        self.state.ready = False
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def start_in_thread(self, timeout_s: float = 60.0) -> Server:
        """Serve from a daemon thread; returns when both front ends accept connections."""
        self._thread = threading.Thread(target=self.run, name="shipyard-serve", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s) or not self.state.ready:
            self.stop()
            raise RuntimeError(f"the server did not start within {timeout_s:g} s")
        return self

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        """``with server.running():`` serve in a thread and always stop and join at the end."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop()
            self.join(self.config.graceful_timeout_s + 10)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (uvicorn's ``--loop auto`` choice), else None."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _quiet_signals_class() -> type:
    import uvicorn

    class QuietSignals(uvicorn.Server):
        """uvicorn without its own signal handling: the Server handles signals for both front
        ends."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietSignals


def _QuietSignals(config: Any) -> Any:  # noqa: N802 - reads as the class it builds
    return _quiet_signals_class()(config)
