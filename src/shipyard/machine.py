"""Facts about this machine, read in one place: usable cores, the cache root, the CPU and its
features.

Example::

    >>> from shipyard import machine
    >>> machine.usable_cores() >= 1
    True
    >>> "AVX2" in machine.cpu().features        # doctest: +SKIP
    True
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

CPU_FEATURES = {
    "AVX2": ("avx2",),
    "FMA": ("fma",),
    "F16C": ("f16c",),
    "AVX-512": ("avx512f",),
    "AVX-512 VNNI": ("avx512_vnni",),
    "AVX-VNNI": ("avx_vnni",),
    "AVX-512 BF16": ("avx512_bf16",),
    "AVX-512 FP16": ("avx512_fp16",),
    "AMX": ("amx_tile",),
    "AMX-INT8": ("amx_int8",),
    "AMX-BF16": ("amx_bf16",),
    "AMX-FP16": ("amx_fp16",),
}
"""Feature label (as ``shipyard doctor`` and the report print it) → the /proc/cpuinfo flags meaning
it."""


@dataclass(frozen=True)
class Cpu:
    model: str
    flags: frozenset[str]
    cores: int
    """Logical CPUs of the machine."""

    @property
    def features(self) -> list[str]:
        """The labels of ``CPU_FEATURES`` this CPU has."""
        return [
            label for label, names in CPU_FEATURES.items() if any(n in self.flags for n in names)
        ]

    def has(self, label: str) -> bool:
        return any(n in self.flags for n in CPU_FEATURES[label])


@functools.cache
def cpu() -> Cpu:
    """This machine's CPU, from the first processor of /proc/cpuinfo (model and no flags off
    Linux)."""
    fields = _first_processor()
    return Cpu(
        fields.get("model name", platform.processor() or "unknown"),
        frozenset(fields.get("flags", "").split()),
        os.cpu_count() or 1,
    )


def usable_cores() -> int:
    """The cores this process may run on (its affinity), which is what thread counts should
    follow."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cache_root() -> Path:
    """``$SHIPYARD_CACHE``, by default ``~/.cache/shipyard``: reference outputs, artifacts, example
    weights."""
    return Path(os.environ.get("SHIPYARD_CACHE", Path.home() / ".cache" / "shipyard"))


def examples_cache() -> Path:
    """Trained weights of the built-in examples, keyed by their recipe:
    ``$SHIPYARD_EXAMPLES_CACHE``,
    by default ``cache_root() / "examples"`` (tests share this one while each run gets a fresh
    cache_root)."""
    return Path(os.environ.get("SHIPYARD_EXAMPLES_CACHE", cache_root() / "examples"))


def describe() -> dict[str, object]:
    """The machine as a package's manifest records it."""
    this = cpu()
    return {
        "cpu": this.model,
        "cores": this.cores,
        "usable_cores": usable_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_features": this.features,
        "cpu_flags": [
            f
            for f in (
                "avx2",
                "avx512f",
                "avx512_vnni",
                "avx_vnni",
                "avx512_bf16",
                "avx512_fp16",
                "amx_tile",
                "amx_int8",
                "amx_bf16",
                "amx_fp16",
            )
            if f in this.flags
        ],
    }


def _first_processor() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields
