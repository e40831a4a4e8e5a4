"""What the HTTP and gRPC front ends share: the repository, metrics, options and readiness."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.serve.limits import ByteBudget
from shipyard.serve.metrics import Metrics
from shipyard.serve.repository import Repository, ServeOptions

EXTENSIONS = ["binary_tensor_data", "statistics"]


@dataclass
class ServerState:
    repository: Repository
    metrics: Metrics
    options: ServeOptions
    ready: bool = False
    budget: ByteBudget = field(init=False)

    def __post_init__(self) -> None:
        self.budget = ByteBudget(self.options.max_inflight_bytes)

    def server_metadata(self) -> dict[str, Any]:
        from shipyard import __version__

        return {"name": "shipyard", "version": __version__, "extensions": EXTENSIONS}
