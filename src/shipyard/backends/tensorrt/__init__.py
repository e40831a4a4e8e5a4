"""TensorRT: serialized engines (FP32, FP16, INT8) built from the ONNX export, run on an NVIDIA GPU.

Written to TensorRT 10's documented API; NOT YET VERIFIED ON GPU HARDWARE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.backends.base import ONNX, Runtime, Session, require_module
from shipyard.backends.gpu import gpu_missing
from shipyard.records import Artifact, Candidate

if TYPE_CHECKING:
    from shipyard.sources.base import Source
    from shipyard.workshop import Workshop


class TensorRtBackend(Runtime):
    name = "tensorrt"
    device = "gpu"
    formats = ("tensorrt",)
    package = "tensorrt"
    converts = {"tensorrt": "onnx"}

    def available(self) -> tuple[bool, str]:
        ok, why = require_module("tensorrt", "tensorrt (needs an NVIDIA GPU, driver and CUDA 12)")
        if not ok:
            return ok, why
        missing = gpu_missing()
        return (False, f"not available: {missing}") if missing else (True, "")

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.tensorrt.session import TensorRtSession

        return TensorRtSession(artifact)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        """An engine at ``precision`` (fp32, fp16, or int8 calibrated on the build's data)."""
        if precision not in ("fp32", "fp16", "int8"):
            return []
        return [
            Candidate(
                self.name, precision, ONNX.then("convert", format="tensorrt", precision=precision)
            )
        ]

    def convert(
        self, workshop: Workshop, previous: Artifact, format: str, **options: Any
    ) -> Artifact:
        from shipyard.backends.tensorrt.convert import EngineOptions, build_engine

        return build_engine(
            previous, workshop.new_path(".engine"), EngineOptions(**options), workshop.calibration
        )


BACKEND = TensorRtBackend()
