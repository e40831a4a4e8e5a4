"""The CPU features a package's precision relies on: written at build time, checked at load time.

A BF16 package built on an AVX512-BF16 machine still loads on an AVX2 one, but runs at FP32
speed or slower; an INT8 package with full 8-bit weights (built where VNNI exists) runs slower
and may saturate on AVX2. The manifest's ``cpu_requirements`` says which features the choice
depended on and what running without them costs, measured in the build; ``warn_if_missing``
warns once per package when the loading CPU lacks all of them.
"""

from __future__ import annotations

import warnings
from typing import Any

from shipyard.quantize.auto import (
    BF16_FEATURES,
    FP16_FEATURES,
    INT8_FEATURES,
    features_for,
)
from shipyard.records import Candidate

_FAMILY = {
    "bf16": BF16_FEATURES,
    "fp16": FP16_FEATURES,
    "int8": INT8_FEATURES,
    "mixed": INT8_FEATURES,
}
_WITHOUT = {
    "bf16": "{runtime} runs BF16 without hardware support ({fallback})",
    "fp16": "OpenVINO runs the model in FP32 instead of FP16",
    "int8": (
        "INT8 falls back to the slower AVX2 path, and full-range 8-bit weights can saturate "
        "there (the build on such a CPU would use 7-bit weights)"
    ),
}
_warned: set[str] = set()


def cpu_requirements(
    chosen: Candidate, candidates: list[Candidate], flags: frozenset[str]
) -> dict[str, Any] | None:
    """The manifest's ``cpu_requirements`` for ``chosen``; None when it needs no special feature."""
    used = features_for(chosen.precision, chosen.runtime, flags)
    if not used:
        return None
    precision = "int8" if chosen.precision == "mixed" else chosen.precision
    from shipyard.backends import get_backend

    fallback = get_backend(chosen.backend).without_native_precision
    cost = _WITHOUT[precision].format(runtime=chosen.backend, fallback=fallback)
    fp32 = [
        c for c in candidates if c.precision == "fp32" and c.passed and c.timing and c.timing.calls
    ]
    if fp32 and chosen.timing and chosen.timing.calls:
        fastest = min(fp32, key=lambda c: c.timing.p50_ms)
        cost += (
            f"; the fastest FP32 candidate here ({fastest.key}) took "
            f"{fastest.timing.p50_ms:.2f} ms at batch 1, "
            f"{fastest.timing.p50_ms / chosen.timing.p50_ms:.2f}× this package's "
            f"{chosen.timing.p50_ms:.2f} ms"
        )
    return {
        "precision": chosen.precision,
        "any_of": list(_FAMILY[precision]),
        "built_with": list(used),
        "without": cost,
    }


def missing(requirements: dict[str, Any] | None, flags: frozenset[str]) -> bool:
    """Whether this CPU (``flags``) has none of the features the package relies on."""
    return bool(requirements) and not any(f in flags for f in requirements.get("any_of", []))


def warn_if_missing(
    package: str, requirements: dict[str, Any] | None, flags: frozenset[str]
) -> bool:
    """Warn (once per package and process) when this CPU lacks what the precision needs."""
    if not missing(requirements, flags) or package in _warned:
        return False
    _warned.add(package)
    warnings.warn(
        f"package {package}: its {requirements['precision']} variant was chosen on a CPU with "
        f"{' / '.join(requirements['built_with'])}; this CPU has none of "
        f"{', '.join(requirements['any_of'])}, so {requirements['without']}. "
        "Rebuild the package on this machine for its fastest variant.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True
