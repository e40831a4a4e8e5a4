"""What can run here: every backend and framework extra (version, available or why not, how to get
it)
and the machine.

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
import platform
import shutil
from dataclasses import dataclass, field

_NEEDS_COMPILER = ("tvm", "aoti")


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
        statuses.append(
            BackendStatus(
                name,
                ok,
                package_version(backend.package),
                "" if ok else why,
                _converter_notes(name),
            )
        )
    return statuses


def framework_statuses():
    """The framework extras (``paddle``, ``tf``, ``caffe``): each a MODEL form, its runtime and
    converter."""
    from shipyard.sources.extras import framework_statuses as statuses

    return statuses()


def runtime_versions(backends: list[str]) -> dict[str, str]:
    """``{pip package: version}`` of Python, Shipyard, numpy, onnx and the runtimes behind
    ``backends``."""
    from shipyard.backends import backend_names, get_backend

    known = set(backend_names())
    runtimes = [get_backend(b).package for b in backends if b in known]
    packages = ["numpy", "onnx"] + (["nncf"] if "openvino" in backends else []) + runtimes
    versions = {
        "python": platform.python_version(),
        "shipyard": package_version("shipyard") or "dev",
    }
    for package in dict.fromkeys(packages):
        if package_version(package):
            versions[package] = package_version(package)
    return versions


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
    from shipyard import machine
    from shipyard.backends.gpu import nvidia_gpus

    cpu = machine.cpu()
    return MachineStatus(
        cpu=cpu.model,
        cores=cpu.cores,
        usable_cores=machine.usable_cores(),
        flags={label: cpu.has(label) for label in machine.CPU_FEATURES},
        gpus=nvidia_gpus(),
        platform=platform.platform(),
        python=platform.python_version(),
    )
