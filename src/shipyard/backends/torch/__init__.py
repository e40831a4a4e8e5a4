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
    runtime_options = ("autocast",)

    def _load_impl(self, artifact: Artifact, threads: int, autocast: str | None = None) -> Session:
        from shipyard.backends.torch.session import load_program

        return load_program(artifact, threads, autocast)

    def session_for_module(self, module: Any, signature: Signature, threads: int) -> Session:
        """A session on an in-memory module (the build's baseline and reference)."""
        ensure_available(self)
        from shipyard.backends.torch.session import TorchSession

        return TorchSession(module.eval(), signature, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        """FP32, and BF16 by ``torch.autocast`` (oneDNN's BF16 kernels) on the same exported
        program."""
        if precision not in ("fp32", "bf16") or source.kind != "torch":
            return []
        runtime = {"autocast": "bf16"} if precision == "bf16" else {}
        return [
            Candidate(
                self.name,
                precision,
                Recipe().then("export", format="torch-export"),
                runtime=runtime,
            )
        ]


BACKEND = TorchBackend()
