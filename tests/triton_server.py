"""A real Triton Inference Server (2.51, from the ``nvidia-pytriton`` wheel) on 127.0.0.1 for tests
and benchmarks.

``scripts/triton_env.sh`` makes its environment (a venv with the wheel, numpy<2, ONNX Runtime and
this project). :func:`triton_env` finds it — or makes it, once, when ``SHIPYARD_TRITON_SETUP=1`` —
and :func:`running_triton` starts ``tritonserver`` on free loopback ports, waits until every model
is ready and always stops it.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SETUP_SCRIPT = REPO_ROOT / "scripts" / "triton_env.sh"


@dataclass
class TritonEnv:
    """Where the Triton binary, its backends and its Python live."""

    venv: Path

    @property
    def site(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages"))

    @property
    def binary(self) -> Path:
        return self.site / "pytriton" / "tritonserver" / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.site / "pytriton" / "tritonserver" / "backends"

    def environ(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        }
        libs = str(self.site / "nvidia_pytriton.libs")
        env["LD_LIBRARY_PATH"] = libs + (
            ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else ""
        )
        env["PATH"] = (
            f"{self.venv / 'bin'}:{env.get('PATH', '')}"  # the stub's Python is the first python3
        )
        return env


def default_venv() -> Path:
    cache = Path(os.environ.get("SHIPYARD_CACHE", Path.home() / ".cache" / "shipyard"))
    return Path(os.environ.get("SHIPYARD_TRITON_ENV", cache / "triton-env"))


def triton_env() -> tuple[TritonEnv | None, str]:
    """The Triton environment, or None and why not (a reason to skip on)."""
    venv = default_venv()
    if not (venv / ".shipyard-triton").is_file() and os.environ.get("SHIPYARD_TRITON_SETUP") == "1":
        done = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"scripts/triton_env.sh failed: {done.stderr.strip()[-400:]}"
    if not (venv / ".shipyard-triton").is_file():
        return None, (
            f"no Triton environment at {venv}: run `bash scripts/triton_env.sh` "
            f"(scripts/test.sh does) to install nvidia-pytriton's tritonserver"
        )
    env = TritonEnv(venv)
    if not env.binary.is_file():
        return None, f"{env.binary} is missing; rerun scripts/triton_env.sh"
    return env, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TritonProcess:
    """A running ``tritonserver``: its ports and its log file."""

    http_port: int
    grpc_port: int
    log: Path
    process: subprocess.Popen

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


PORT_ATTEMPTS = 3
"""Triton needs its ports named: one picked free may be taken before Triton binds it; then it exits
saying so, and it is started again on other ports."""


class PortTaken(RuntimeError):
    pass


@contextmanager
def running_triton(
    env: TritonEnv,
    repository: Path,
    log: Path,
    timeout_s: float = 180,
    extra_args: tuple[str, ...] = (),
) -> Iterator[TritonProcess]:
    """``tritonserver`` serving ``repository`` on free 127.0.0.1 ports until the block ends."""
    for attempt in range(PORT_ATTEMPTS):
        server = _start(env, repository, log, extra_args)
        try:
            _wait_ready(server, timeout_s)
            break
        except PortTaken:
            _stop(server.process)
            if attempt == PORT_ATTEMPTS - 1:
                raise
        except BaseException:
            _stop(server.process)
            raise
    try:
        yield server
    finally:
        _stop(server.process)


def _start(
    env: TritonEnv, repository: Path, log: Path, extra_args: tuple[str, ...]
) -> TritonProcess:
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    argv = [
        str(env.binary),
        f"--model-repository={repository}",
        f"--backend-directory={env.backends}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--allow-gpu-metrics=false",
        f"--metrics-port={metrics_port}",
        "--exit-on-error=true",
        "--strict-readiness=true",
        "--exit-timeout-secs=5",
        *extra_args,
    ]
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.STDOUT, env=env.environ(), start_new_session=True
        )
    return TritonProcess(http_port, grpc_port, log, process)


def _wait_ready(server: TritonProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            if "already in use" in tail(server.log):
                raise PortTaken(f"a port Triton was given was taken:\n{tail(server.log)}")
            raise RuntimeError(
                f"tritonserver exited with {server.process.returncode}:\n{tail(server.log)}"
            )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"tritonserver was not ready within {timeout_s:g} s:\n{tail(server.log)}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (Triton unloads its models and exits), then SIGKILL its whole group if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    try:  # Python-backend stubs are children of Triton in its own session: none may outlive it
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else ""
