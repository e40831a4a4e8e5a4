"""``shipyard serve`` as a user starts it, in a process of its own, on loopback ports it picks
itself (``--http-port 0 --grpc-port 0``) and prints: no free-port race with other tests.

Both output streams are read as they come, so a chatty server never blocks on a full pipe.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVING = re.compile(r"^serving .* on http://[^:]+:(\d+)(?: and grpc://[^:]+:(\d+))?$")


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    http_port: int = 0
    grpc_port: int | None = None
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def output(self, timeout_s: float = 30) -> tuple[str, str]:
        """(stdout, stderr) of the whole run, once the process has ended."""
        self.proc.wait(timeout_s)
        for reader in self.readers:
            reader.join(timeout_s)
        return "".join(self.out), "".join(self.err)

    def stop(self, timeout_s: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout_s)


def start_serve(folders: list[Path], *flags: str, timeout_s: float = 120) -> ServeProcess:
    """``shipyard serve FOLDERS… FLAGS…`` once it prints the ports it serves on."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "serve",
            *map(str, folders),
            "--http-port",
            "0",
            *([] if "--grpc-port" in flags else ["--grpc-port", "0"]),
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    served = ServeProcess(proc)
    for stream, lines in ((proc.stdout, served.out), (proc.stderr, served.err)):
        reader = threading.Thread(target=_collect, args=(stream, lines), daemon=True)
        reader.start()
        served.readers.append(reader)
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        for line in list(served.out):
            if match := SERVING.match(line.strip()):
                served.http_port = int(match[1])
                served.grpc_port = int(match[2]) if match[2] else None
                return served
        time.sleep(0.05)
    served.stop()
    raise RuntimeError(f"shipyard serve did not start: {''.join(served.err)[-2000:]}")


def _collect(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)
