"""TorchScript: a traced and frozen module, loadable from C++ (libtorch) without Python."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.backends.base import Runtime, Session
from shipyard.records import Artifact, Candidate, Recipe

if TYPE_CHECKING:
    from shipyard.sources.base import Source


class TorchScriptBackend(Runtime):
    name = "torchscript"
    formats = ("torchscript",)
    package = "torch"
    module = "torch"

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.torchscript.session import load_torchscript

        return load_torchscript(artifact, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        if precision != "fp32" or source.kind not in ("torch", "torchscript"):
            return []
        return [Candidate(self.name, "fp32", Recipe().then("export", format="torchscript"))]


BACKEND = TorchScriptBackend()
