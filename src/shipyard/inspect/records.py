"""What ``shipyard inspect`` finds, as plain records (``to_json`` for ``--json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.records import Signature


@dataclass
class LayerProfile:
    """One runtime node: its cost (FLOPs, bytes moved) and its measured time."""

    name: str
    op_type: str
    flops: float
    bytes: float
    time_us: float
    output_shape: list[int] = field(default_factory=list)
    module: str = ""
    """The PyTorch module path the node came from (torch.export-based exports record it)."""

    @property
    def label(self) -> str:
        return self.module or self.name

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved (inputs + weights + outputs)."""
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def gflops_per_s(self) -> float:
        return self.flops / (self.time_us * 1e3) if self.time_us else 0.0


@dataclass
class OperatorSupport:
    """One operator type, how often the model uses it, and whether each backend runs it."""

    op_type: str
    count: int
    backends: dict[str, bool]
    note: str = ""


@dataclass
class Machine:
    peak_gflops: float
    bandwidth_gbs: float
    threads: int

    @property
    def ridge(self) -> float:
        """FLOPs per byte above which a layer is compute-bound on this machine."""
        return self.peak_gflops / self.bandwidth_gbs if self.bandwidth_gbs else 0.0


@dataclass
class Inspection:
    model: str
    kind: str
    signature: Signature
    parameters: int
    layers: list[LayerProfile] = field(default_factory=list)
    operators: list[OperatorSupport] = field(default_factory=list)
    machine: Machine | None = None
    total_time_us: float = 0.0
    notes: list[str] = field(default_factory=list)
    flops_by_module: dict[str, float] = field(default_factory=dict)
    """Torch FLOP counts per module, when the model does not export (no runtime profile)."""

    @property
    def total_flops(self) -> float:
        if self.layers:
            return sum(layer.flops for layer in self.layers)
        return self.flops_by_module.get("", sum(self.flops_by_module.values()))

    @property
    def total_bytes(self) -> float:
        return sum(layer.bytes for layer in self.layers)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "kind": self.kind,
            **self.signature.to_json(),
            "parameters": self.parameters,
            "total_flops": self.total_flops,
            "total_time_us": self.total_time_us,
            "arithmetic_intensity": self.total_flops / self.total_bytes
            if self.total_bytes
            else None,
            "machine": {**asdict(self.machine), "ridge_flops_per_byte": self.machine.ridge}
            if self.machine
            else None,
            "layers": [{**asdict(l), "intensity": l.intensity} for l in self.layers],
            "operators": [asdict(o) for o in self.operators],
            "flops_by_module": self.flops_by_module,
            "notes": self.notes,
        }
