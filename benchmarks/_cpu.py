"""Where a load point's CPU went: a server's event-loop thread, its other threads, the client
(Linux: the server's threads are read from ``/proc``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuShare:
    """Cores kept busy during one load point, on average over its wall time."""

    loop: float
    """The server's main thread: its asyncio event loop (HTTP parsing, the endpoint, batcher)."""
    others: float
    """The server's other threads: model instances and the runtime's own threads."""
    client: float
    """The load generator (this process)."""


def thread_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of every thread of ``pid``, by thread id."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return seconds


class CpuMeter:
    """Measures a server process and this process between ``start()`` and ``stop()``."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid

    def start(self) -> None:
        self._server = thread_seconds(self.pid)
        self._client, self._wall = time.process_time(), time.perf_counter()

    def stop(self) -> CpuShare:
        wall = time.perf_counter() - self._wall
        client = time.process_time() - self._client
        now = thread_seconds(self.pid)
        spent = {tid: s - self._server.get(tid, 0.0) for tid, s in now.items()}
        loop = spent.pop(self.pid, 0.0)
        return CpuShare(loop / wall, sum(spent.values()) / wall, client / wall)
