"""AOTInductor: a ``torch.export`` program compiled ahead of time to a native library (``.pt2``
package)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.backends.base import Runtime, Session
from shipyard.records import Artifact, Candidate, Recipe

if TYPE_CHECKING:
    from shipyard.sources.base import Source
    from shipyard.workshop import Workshop


class AotiBackend(Runtime):
    name = "aoti"
    formats = ("aoti",)
    package = "torch"
    module = "torch"
    converts = {"aoti": "torch-export"}

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.aoti.session import load_aoti

        return load_aoti(artifact, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        if precision != "fp32" or source.kind != "torch":
            return []
        return [
            Candidate(
                self.name,
                "fp32",
                Recipe().then("export", format="torch-export").then("convert", format="aoti"),
            )
        ]

    def convert(
        self, workshop: Workshop, previous: Artifact, format: str, **options: Any
    ) -> Artifact:
        from shipyard.backends.aoti.convert import compile_aoti

        return compile_aoti(previous, workshop.new_path(".pt2"))


BACKEND = AotiBackend()
