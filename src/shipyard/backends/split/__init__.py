"""``split``: the exportable parts in ONNX Runtime, the operators no exporter knows in PyTorch.

The splitting itself lives in ``shipyard.split`` (a deployment technique, not a runtime); this
folder is its face among the backends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.backends.base import Runtime, Session, require_module
from shipyard.records import Artifact, Candidate

if TYPE_CHECKING:
    from shipyard.sources.base import Source


class SplitBackend(Runtime):
    name = "split"
    formats = ("split",)
    package = "torch"

    def available(self) -> tuple[bool, str]:
        ok, why = require_module("torch", "torch")
        return (ok, why) if not ok else require_module("onnxruntime", "onnxruntime")

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.split.session import SplitSession

        return SplitSession(artifact, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        """Only for models with operators no exporter knows (found by running the model once)."""
        if precision != "fp32":
            return []
        from shipyard.split.plan import split_plans

        return split_plans(source)


BACKEND = SplitBackend()
