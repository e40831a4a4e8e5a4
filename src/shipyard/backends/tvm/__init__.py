"""Apache TVM (Relax) on the CPU: a library compiled for this CPU, optionally tuned by
MetaSchedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.backends.base import ONNX, Runtime, Session
from shipyard.records import Artifact, Candidate, Recipe

if TYPE_CHECKING:
    from shipyard.sources.base import Source
    from shipyard.workshop import Workshop


class TvmBackend(Runtime):
    name = "tvm"
    formats = ("tvm",)
    package = "apache-tvm"
    module = "tvm"
    converts = {"tvm": "onnx"}

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.tvm.session import TvmSession

        return TvmSession(artifact, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        return (
            [Candidate(self.name, "fp32", ONNX.then("convert", format="tvm"))]
            if precision == "fp32"
            else []
        )

    def tuned(self, plan: Candidate, tune_seconds: float, threads: int) -> Candidate | None:
        """A MetaSchedule-tuned twin of an untuned FP32 candidate (``--tune-seconds``)."""
        if plan.precision != "fp32" or plan.name:
            return None
        seconds = int(tune_seconds) if float(tune_seconds).is_integer() else tune_seconds
        *made, convert = plan.recipe.steps
        recipe = Recipe(tuple(made)).then(
            convert.name, **convert.options, tune_seconds=seconds, threads=threads
        )
        return Candidate(self.name, "fp32", recipe, name=f"tvm/fp32+tuned-{seconds}s")

    def convert(
        self, workshop: Workshop, previous: Artifact, format: str, **options: Any
    ) -> Artifact:
        from shipyard.backends.tvm.tune import compile_for_build

        return compile_for_build(workshop, previous, **options)


BACKEND = TvmBackend()
