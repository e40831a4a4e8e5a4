"""What can run here: every backend (version, available or why not, how to get it) and the machine.

Example::

    >>> from shipyard.doctor import backend_statuses, machine_status
    >>> [s.name for s in backend_statuses() if s.available]       # doctest: +SKIP
    ['torch', 'torchscript', 'onnxruntime', 'openvino', 'ncnn', 'mnn', 'tvm', 'aoti']
    >>> machine_status().flags["AVX2"]                             # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path

_PACKAGES = {"torch": "torch", "torchscript": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino",
             "split": "torch"}
"""Backends written before the ``package`` attribute existed → their pip package."""
_NEEDS_COMPILER = ("tvm", "aoti")
_CPU_FLAGS = {"AVX2": ("avx2",), "FMA": ("fma",), "F16C": ("f16c",), "AVX-512": ("avx512f",),
              "AVX-512 VNNI": ("avx512_vnni",), "AVX-VNNI": ("avx_vnni",), "AVX-512 BF16": ("avx512_bf16",),
              "AMX": ("amx_tile",), "AMX-INT8": ("amx_int8",), "AMX-BF16": ("amx_bf16",)}


@dataclass
class BackendStatus:
    name: str
    available: bool
    version: str
    reason: str = ""
    """Why it cannot run here and how to install it; empty when it can."""
    notes: list[str] = field(default_factory=list)
    """What else its converter needs (pnnx, a C++ compiler), when that is missing."""


@dataclass
class MachineStatus:
    cpu: str
    cores: int
    usable_cores: int
    flags: dict[str, bool]
    gpus: list[str]
    platform: str
    python: str


def backend_statuses() -> list[BackendStatus]:
    """Every registered backend (but the test-only ``fake``), in registry order."""
    from shipyard.backends import backend_names, get_backend

    statuses = []
    for name in backend_names():
        if name == "fake":
            continue
        backend = get_backend(name)
        ok, why = backend.available()
        package = getattr(backend, "package", _PACKAGES.get(name, name))
        statuses.append(BackendStatus(name, ok, package_version(package), "" if ok else why, _converter_notes(name)))
    return statuses


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _converter_notes(name: str) -> list[str]:
    notes = []
    if name == "ncnn" and importlib.util.find_spec("pnnx") is None:
        notes.append("its converter is missing: pip install pnnx")
    if name in _NEEDS_COMPILER and not (shutil.which("g++") or shutil.which("c++")):
        notes.append("compiling needs a C++ compiler (g++) on PATH")
    return notes


def machine_status() -> MachineStatus:
    from shipyard.backends.gpu import nvidia_gpus

    info = _cpu_info()
    present = set(info.get("flags", "").split())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return MachineStatus(cpu=info.get("model name", platform.processor() or "unknown"),
                         cores=os.cpu_count() or 1, usable_cores=usable,
                         flags={label: any(f in present for f in names) for label, names in _CPU_FLAGS.items()},
                         gpus=nvidia_gpus(), platform=platform.platform(), python=platform.python_version())


def _cpu_info() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields
