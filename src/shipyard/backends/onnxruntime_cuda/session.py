"""ONNX Runtime on an NVIDIA GPU: the CUDA execution provider, or TensorRT's (falling back to CUDA).

Written to ONNX Runtime's documented provider options; NOT YET VERIFIED ON GPU HARDWARE (this
project's machine has no GPU). Needs ``pip install onnxruntime-gpu`` (instead of ``onnxruntime``)
and an NVIDIA driver; the TensorRT provider also needs TensorRT's libraries on the library path.
A session refuses to run when ONNX Runtime silently fell back to the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.backends.base import Session
from shipyard.backends.onnxruntime_cuda import CUDA, TENSORRT
from shipyard.errors import BackendUnavailable
from shipyard.records import Artifact


def provider_options(
    provider: str, artifact: Artifact, fp16: bool = False, int8: bool = False
) -> list[Any]:
    """The provider list for ``InferenceSession``: the wanted provider first, then its fallbacks."""
    cuda = (CUDA, {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"})
    if provider == CUDA:
        return [cuda, "CPUExecutionProvider"]
    cache = artifact.path.parent / "trt-cache"
    trt = (
        TENSORRT,
        {
            "device_id": 0,
            "trt_fp16_enable": fp16,
            "trt_int8_enable": int8,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        },
    )
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
        self._session = ort.InferenceSession(
            str(artifact.path), options, providers=provider_options(provider, artifact)
        )
        if self._session.get_providers()[0] != provider:
            raise BackendUnavailable(
                f"ONNX Runtime did not start {provider} (it runs on "
                f"{self._session.get_providers()}); check the CUDA/TensorRT libraries"
            )
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(self._outputs, inputs)))
