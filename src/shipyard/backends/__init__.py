"""Backends: one module per runtime, imported only when it is asked for."""

from __future__ import annotations

import importlib

from shipyard.backends.base import Backend, Session
from shipyard.errors import UsageError

_MODULES = {
    "torch": "shipyard.backends.torch_eager",
    "torchscript": "shipyard.backends.torchscript",
    "onnxruntime": "shipyard.backends.onnxruntime",
    "openvino": "shipyard.backends.openvino",
    "fake": "shipyard.backends.fake",
    "ncnn": "shipyard.backends.ncnn",
    "mnn": "shipyard.backends.mnn",
    "tvm": "shipyard.backends.tvm",
    "aoti": "shipyard.backends.aoti",
    "tensorrt": "shipyard.backends.tensorrt",
    "onnxruntime-cuda": "shipyard.backends.onnxruntime_gpu",
    "onnxruntime-trt": "shipyard.backends.onnxruntime_trt",
    "split": "shipyard.split.session",
}

CPU_BACKENDS = ("torch", "torchscript", "onnxruntime", "openvino", "split")
"""The backends a CPU build tries by default, baseline first."""


def backend_names() -> list[str]:
    return list(_MODULES)


def get_backend(name: str) -> Backend:
    """The backend called ``name``; its runtime is imported only when a model is loaded."""
    if name not in _MODULES:
        raise UsageError(f"unknown backend {name!r}; expected one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name]).BACKEND


__all__ = ["Backend", "Session", "CPU_BACKENDS", "backend_names", "get_backend"]
