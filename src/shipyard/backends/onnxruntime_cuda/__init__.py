"""ONNX Runtime on an NVIDIA GPU through the CUDA execution provider; NOT YET VERIFIED ON GPU
HARDWARE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.backends.base import ONNX, Runtime, Session
from shipyard.backends.gpu import gpu_missing
from shipyard.records import Artifact, Candidate

if TYPE_CHECKING:
    from shipyard.sources.base import Source

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


class OrtGpuBackend(Runtime):
    """ONNX Runtime with one GPU execution provider (CUDA, or TensorRT's falling back to CUDA)."""

    formats = ("onnx",)
    package = "onnxruntime-gpu"
    device = "gpu"

    def __init__(self, name: str, provider: str) -> None:
        self.name = name
        self.provider = provider

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return (
                False,
                "not available: pip install onnxruntime-gpu (needs an NVIDIA GPU and driver)",
            )
        providers = ort.get_available_providers()
        if self.provider not in providers:
            return False, (
                f"not available: this onnxruntime offers {', '.join(providers)}, not "
                f"{self.provider}; "
                "pip uninstall onnxruntime && pip install onnxruntime-gpu on a machine with an "
                "NVIDIA GPU"
            )
        missing = gpu_missing()
        return (False, f"not available: {missing}") if missing else (True, "")

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.onnxruntime_cuda.session import OrtGpuSession

        return OrtGpuSession(artifact, self.provider)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        return [Candidate(self.name, "fp32", ONNX)] if precision == "fp32" else []


BACKEND = OrtGpuBackend("onnxruntime-cuda", CUDA)
