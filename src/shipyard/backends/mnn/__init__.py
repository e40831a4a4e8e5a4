"""MNN (Alibaba) on the CPU, from an ``.mnn`` model converted from ONNX; FP16 or INT8 weight
storage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.backends.base import ONNX, Runtime, Session
from shipyard.records import Artifact, Candidate

if TYPE_CHECKING:
    from shipyard.sources.base import Source
    from shipyard.workshop import Workshop

WEIGHT_OPTIONS = {"fp32": {}, "fp16": {"fp16": True}, "int8": {"weight_bits": 8}}
"""MNN's converter ``--fp16`` / ``--weightQuantBits 8`` store weights smaller; x86 computes in
float."""


class MnnBackend(Runtime):
    name = "mnn"
    formats = ("mnn",)
    package = "MNN"
    module = "MNN"
    converts = {"mnn": "onnx"}

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.mnn.session import MnnSession

        return MnnSession(artifact, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        if precision not in WEIGHT_OPTIONS:
            return []
        return [
            Candidate(
                self.name,
                precision,
                ONNX.then("convert", format="mnn", **WEIGHT_OPTIONS[precision]),
            )
        ]

    def convert(
        self, workshop: Workshop, previous: Artifact, format: str, **options: Any
    ) -> Artifact:
        from shipyard.backends.mnn.convert import convert_to_mnn

        return convert_to_mnn(previous, workshop.new_path(".mnn"), **options)


BACKEND = MnnBackend()
