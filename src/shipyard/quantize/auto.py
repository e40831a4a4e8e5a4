"""``--precisions auto``: FP32 plus the reduced precisions this CPU runs natively.

    bf16  where the CPU has AMX-BF16 or AVX512-BF16 (OpenVINO's bf16 inference precision,
          PyTorch autocast on oneDNN)
    fp16  FP16 *compute* where it has AVX512-FP16 or AMX-FP16; the build times it and keeps it
          only if it is faster (CPUs without it would decompress FP16 weights to FP32)
    int8  always; with 8-bit weights where VNNI/AMX-INT8 exists, 7-bit weights elsewhere (the
          AVX2 ``VPMADDUBSW`` path saturates on full-range weights)

INT8 needs calibration on real data; BF16 and FP16 need none, so without real data the build
tries only those. A budget of 0 points leaves nothing a reduced precision could spend: FP32 only.

Every choice lists the CPU features it depended on (``Native.features``); the package records
those of the chosen candidate, and loading it on a CPU without them warns
(``shipyard.package.cpu_check``). The logic takes the feature set as an argument, so it is tested
with fake sets for AVX2-only, AVX512-BF16 and AMX machines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AUTO = "auto"
BF16_FEATURES = ("amx_bf16", "avx512_bf16")
FP16_FEATURES = ("amx_fp16", "avx512_fp16")
INT8_FEATURES = ("amx_int8", "avx512_vnni", "avx_vnni")
"""/proc/cpuinfo flag names, fastest first."""


@dataclass(frozen=True)
class Native:
    """A reduced precision this CPU runs in hardware, and the features that make it so."""

    precision: str
    features: tuple[str, ...]


@dataclass
class AutoChoice:
    """What ``--precisions auto`` resolved to, and why (one note per precision left out)."""

    precisions: list[str]
    natives: list[Native] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def native_precisions(flags: set[str] | frozenset[str]) -> list[Native]:
    """The reduced precisions ``flags`` run natively, in the order a build tries them."""
    natives = []
    for precision, names in (("bf16", BF16_FEATURES), ("fp16", FP16_FEATURES)):
        present = tuple(f for f in names if f in flags)
        if present:
            natives.append(Native(precision, present))
    natives.append(Native("int8", tuple(f for f in INT8_FEATURES if f in flags)))
    return natives


def int8_full_range(flags: set[str] | frozenset[str]) -> bool:
    """Whether INT8 weights may use all 8 bits: VNNI / AMX-INT8 do not saturate."""
    return any(f in flags for f in INT8_FEATURES)


def resolve_auto(flags: set[str] | frozenset[str], real_data: bool, max_drop: float) -> AutoChoice:
    """``auto`` for this CPU (``flags``), this data and this budget."""
    if max_drop <= 0:
        return AutoChoice(
            ["fp32"],
            notes=[
                "--precisions auto: a budget of 0 points leaves room for no "
                "reduced precision; FP32 only"
            ],
        )
    natives = native_precisions(flags)
    choice = AutoChoice(["fp32"])
    for native in natives:
        if native.precision == "int8" and not real_data:
            choice.notes.append(
                "--precisions auto: no INT8 without real calibration data (pass --data)"
            )
            continue
        choice.precisions.append(native.precision)
        choice.natives.append(native)
    if not any(n.precision == "bf16" for n in natives):
        choice.notes.append(
            "--precisions auto: no BF16, this CPU has neither AMX-BF16 nor AVX512-BF16"
        )
    return choice


def expand_precisions(
    precisions: list[str] | None, flags: set[str] | frozenset[str], real_data: bool, max_drop: float
) -> AutoChoice:
    """``precisions`` with ``auto`` (also the default, None) resolved, order kept."""
    wanted = precisions or [AUTO]
    if AUTO not in wanted:
        return AutoChoice(list(wanted))
    auto = resolve_auto(flags, real_data, max_drop)
    expanded: list[str] = []
    for name in wanted:
        for precision in auto.precisions if name == AUTO else [name]:
            if precision not in expanded:
                expanded.append(precision)
    return AutoChoice(expanded, auto.natives, auto.notes)


def features_for(
    precision: str, runtime: dict, flags: set[str] | frozenset[str]
) -> tuple[str, ...]:
    """The features of ``flags`` a ``precision`` candidate run with ``runtime`` relied on."""
    if precision == "bf16":
        return tuple(f for f in BF16_FEATURES if f in flags)
    if (
        precision == "fp16" and runtime.get("inference_precision") == "f16"
    ):  # FP16 weights alone need nothing
        return tuple(f for f in FP16_FEATURES if f in flags)
    if precision in ("int8", "mixed"):
        return tuple(f for f in INT8_FEATURES if f in flags)
    return ()


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (``/proc/cpuinfo``, read once by ``shipyard.machine``)."""
    from shipyard import machine

    return machine.cpu().flags
