"""Serving packages over the KServe v2 protocol (HTTP and gRPC) with dynamic batching.

Needs the serve extra: ``pip install 'shipyard[serve]'``. Nothing here is imported by
``import shipyard``.
"""

from __future__ import annotations

from shipyard.serve.batcher import BatchConfig, Batcher
from shipyard.serve.repository import Repository, ServedModel, ServeOptions
from shipyard.serve.server import Server, ServerConfig

__all__ = [
    "BatchConfig",
    "Batcher",
    "Repository",
    "ServeOptions",
    "ServedModel",
    "Server",
    "ServerConfig",
]
