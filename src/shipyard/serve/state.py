"""What the HTTP and gRPC front ends share: the repository, metrics, options and readiness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.serve.metrics import Metrics
from shipyard.serve.repository import Repository, ServeOptions

EXTENSIONS = ["binary_tensor_data", "statistics"]


@dataclass
class ServerState:
    repository: Repository
    metrics: Metrics
    options: ServeOptions
    ready: bool = False

    def server_metadata(self) -> dict[str, Any]:
        from shipyard import __version__

        return {"name": "shipyard", "version": __version__, "extensions": EXTENSIONS}
