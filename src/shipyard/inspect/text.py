"""An ``Inspection`` as plain text: the tables ``shipyard inspect`` prints."""

from __future__ import annotations

from shipyard.inspect.records import Inspection, LayerProfile


def format_text(result: Inspection, top: int = 15) -> str:
    lines = [f"model: {result.model} ({result.kind}), {result.parameters:,} parameters"]
    for direction, specs in (
        ("input", result.signature.inputs),
        ("output", result.signature.outputs),
    ):
        for spec in specs:
            lines.append(f"  {direction:6} {spec.name}: {spec.datatype} {spec.kserve_shape}")
    lines.append(
        f"FLOPs (batch 1): {_si(result.total_flops)}FLOP"
        + (
            f", runtime time {result.total_time_us / 1000:.3f} ms over {len(result.layers)} layers"
            if result.layers
            else ""
        )
    )
    if result.machine:
        lines += _machine_lines(result)
    if result.layers:
        lines += _layer_table(result, top)
    elif result.flops_by_module:
        lines.append("FLOPs by module (PyTorch counter):")
        for name, flops in sorted(result.flops_by_module.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {name or '<model>':40} {_si(flops):>9}FLOP")
    lines += _operator_table(result)
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def _machine_lines(result: Inspection) -> list[str]:
    machine = result.machine
    lines = [
        f"machine ({machine.threads} threads): peak {machine.peak_gflops:.1f} GFLOP/s (fp32 GEMM), "
        f"memory {machine.bandwidth_gbs:.1f} GB/s, ridge {machine.ridge:.1f} FLOP/byte"
    ]
    if result.total_bytes and result.total_time_us:
        intensity = result.total_flops / result.total_bytes
        achieved = result.total_flops / (result.total_time_us * 1e3)
        bound = "compute-bound" if intensity >= machine.ridge else "memory-bound"
        lines.append(
            f"whole model: {intensity:.1f} FLOP/byte ({bound}), {achieved:.2f} GFLOP/s achieved = "
            f"{100 * achieved / machine.peak_gflops:.1f}% of peak"
        )
    return lines


def _layer_table(result: Inspection, top: int) -> list[str]:
    ridge = result.machine.ridge if result.machine else None
    lines = [
        f"layers where time goes (top {min(top, len(result.layers))} of {len(result.layers)}):",
        f"  {'layer':34} {'op':16} {'time ms':>8} {'share':>6} {'FLOPs':>8} {'FLOP/B':>7} "
        f"{'GFLOP/s':>8}  bound",
    ]
    total = result.total_time_us or 1.0
    for layer in sorted(result.layers, key=lambda l: -l.time_us)[:top]:
        lines.append(
            f"  {layer.label[-34:]:34} {layer.op_type[:16]:16} {layer.time_us / 1000:8.3f} "
            f"{100 * layer.time_us / total:5.1f}% {_si(layer.flops):>8} {layer.intensity:7.2f} "
            f"{layer.gflops_per_s:8.2f}  {_bound(layer, ridge)}"
        )
    return lines


def _bound(layer: LayerProfile, ridge: float | None) -> str:
    if ridge is None or not layer.flops:
        return "-"
    return "compute" if layer.intensity >= ridge else "memory"


def _operator_table(result: Inspection) -> list[str]:
    if not result.operators:
        return []
    backends = sorted({b for o in result.operators for b in o.backends})
    lines = ["operators:", f"  {'op':32} {'count':>5}  " + "  ".join(f"{b:11}" for b in backends)]
    for op in result.operators:
        cells = "  ".join(
            f"{('yes' if op.backends.get(b) else 'no') if b in op.backends else '-':11}"
            for b in backends
        )
        lines.append(
            f"  {op.op_type[:32]:32} {op.count:5}  {cells}" + (f"  {op.note}" if op.note else "")
        )
    return lines


def _si(value: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} "
