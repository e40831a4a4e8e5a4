"""Backends: one folder per runtime, found by folder name, imported only when it is asked for.

``backends/onnxruntime_cuda/`` is the backend users call ``onnxruntime-cuda``. A folder's
``__init__.py`` holds its ``BACKEND`` (capabilities, planning, dispatch to its converter and
quantisers); the runtime itself is imported by the folder's other modules, when a model is loaded.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path

from shipyard.backends.base import Backend, Runtime, Session
from shipyard.errors import UsageError

CPU_BACKENDS = ("torch", "torchscript", "onnxruntime", "openvino", "split")
"""The backends a CPU build tries by default, baseline first."""


@functools.cache
def _folders() -> dict[str, str]:
    """Backend name → module, one for each sub-package of this folder."""
    found = pkgutil.iter_modules([str(Path(__file__).parent)])
    return {
        info.name.replace("_", "-"): f"{__name__}.{info.name}"
        for info in sorted(found, key=lambda i: i.name)
        if info.ispkg
    }


def backend_names() -> list[str]:
    return list(_folders())


def get_backend(name: str) -> Runtime:
    """The backend called ``name``; its runtime is imported only when a model is loaded."""
    folders = _folders()
    if name not in folders:
        raise UsageError(f"unknown backend {name!r}; expected one of {', '.join(folders)}")
    return importlib.import_module(folders[name]).BACKEND


def all_backends() -> list[Runtime]:
    """Every backend, for questions such as "who converts to this format?"."""
    return [get_backend(name) for name in backend_names()]


def converter_for(format: str) -> Runtime | None:
    """The backend that owns ``convert(format=…)``, if any."""
    return next((b for b in all_backends() if format in b.converts), None)


def quantizer_for(method: str) -> Runtime | None:
    """The backend that owns ``quantize(method=…)``, if any."""
    return next((b for b in all_backends() if method in b.quantizers), None)


__all__ = [
    "Backend",
    "Runtime",
    "Session",
    "CPU_BACKENDS",
    "all_backends",
    "backend_names",
    "converter_for",
    "get_backend",
    "quantizer_for",
]
