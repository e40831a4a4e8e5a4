"""ONNX Runtime on an NVIDIA GPU: the CUDA execution provider, or TensorRT's (falling back to CUDA).

Written to ONNX Runtime's documented provider options; NOT YET VERIFIED ON GPU HARDWARE (this
project's machine has no GPU). Needs ``pip install onnxruntime-gpu`` (instead of ``onnxruntime``)
and an NVIDIA driver; the TensorRT provider also needs TensorRT's libraries on the library path.
A session refuses to run when ONNX Runtime silently fell back to the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.backends.base import Session, ensure_available
from shipyard.backends.gpu import gpu_missing
from shipyard.errors import BackendUnavailable
from shipyard.records import Artifact

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


def provider_options(provider: str, artifact: Artifact, fp16: bool = False, int8: bool = False) -> list[Any]:
    """The provider list for ``InferenceSession``: the wanted provider first, then its fallbacks."""
    cuda = (CUDA, {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"})
    if provider == CUDA:
        return [cuda, "CPUExecutionProvider"]
    cache = artifact.path.parent / "trt-cache"
    trt = (TENSORRT, {"device_id": 0, "trt_fp16_enable": fp16, "trt_int8_enable": int8,
                      "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                      "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache)})
    return [trt, cuda, "CPUExecutionProvider"]


class OrtGpuSession(Session):
    def __init__(self, artifact: Artifact, provider: str) -> None:
        super().__init__(artifact.signature)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if provider == TENSORRT:
            (artifact.path.parent / "trt-cache").mkdir(exist_ok=True)
        self._session = ort.InferenceSession(str(artifact.path), options,
                                             providers=provider_options(provider, artifact))
        if self._session.get_providers()[0] != provider:
            raise BackendUnavailable(f"ONNX Runtime did not start {provider} (it runs on "
                                     f"{self._session.get_providers()}); check the CUDA/TensorRT libraries")
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(self._outputs, inputs)))


class OrtGpuBackend:
    formats = ("onnx",)
    package = "onnxruntime-gpu"

    def __init__(self, name: str, provider: str) -> None:
        self.name = name
        self.provider = provider

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return False, "not available: pip install onnxruntime-gpu (needs an NVIDIA GPU and driver)"
        providers = ort.get_available_providers()
        if self.provider not in providers:
            return False, (f"not available: this onnxruntime offers {', '.join(providers)}, not {self.provider}; "
                           "pip uninstall onnxruntime && pip install onnxruntime-gpu on a machine with an NVIDIA GPU")
        missing = gpu_missing()
        return (False, f"not available: {missing}") if missing else (True, "")

    def load(self, artifact: Artifact, threads: int) -> Session:
        ensure_available(self)
        return OrtGpuSession(artifact, self.provider)


BACKEND = OrtGpuBackend("onnxruntime-cuda", CUDA)
