"""PyTorch eager: the baseline every candidate is compared with, and a candidate of its own.

In a build the baseline runs the user's own module; the ``torch`` candidate, like every other, runs
the file the package ships: a ``torch.export`` program (``model.pt2``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.backends.base import Runtime, Session, ensure_available
from shipyard.records import Artifact, Candidate, Recipe, Signature

if TYPE_CHECKING:
    from shipyard.sources.base import Source


class TorchBackend(Runtime):
    name = "torch"
    formats = ("torch-export",)
    package = "torch"
    module = "torch"


    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.torch.session import load_program

        return load_program(artifact, threads)

    def session_for_module(self, module: Any, signature: Signature, threads: int) -> Session:
        """A session on an in-memory module (the build's baseline and reference)."""
        ensure_available(self)
        from shipyard.backends.torch.session import TorchSession

        return TorchSession(module.eval(), signature, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        if precision != "fp32" or source.kind != "torch":
            return []
        return [Candidate(self.name, "fp32", Recipe().then("export", format="torch-export"))]


BACKEND = TorchBackend()
