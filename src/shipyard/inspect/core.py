"""Gathering an ``Inspection``: load the model, export it to ONNX if needed, profile, measure."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.inspect.records import Inspection, OperatorSupport
from shipyard.sources import InputHint, Source, load_source


def inspect_model(
    model: str,
    weights: Path | None = None,
    hints: list[InputHint] | None = None,
    output_names: list[str] | None = None,
    threads: int = 1,
    measure: bool = True,
) -> Inspection:
    """Inspect ``model`` (any MODEL ``shipyard build`` takes); ``measure`` times this machine's
    peak."""
    source = load_source(model, weights, hints or [], output_names)
    result = Inspection(model, source.kind, source.signature, count_parameters(source))
    custom = _custom_operators(source)
    with tempfile.TemporaryDirectory(prefix="shipyard-inspect-") as scratch:
        onnx_path = (
            _onnx_path(source, Path(scratch), result) if not _blocks_export(custom) else None
        )
        if onnx_path is not None:
            from shipyard.inspect.profile import example_feed, profile_onnx
            from shipyard.inspect.support import operator_support

            result.layers = profile_onnx(onnx_path, example_feed(source.signature), threads)
            result.total_time_us = sum(layer.time_us for layer in result.layers)
            result.operators = operator_support(onnx_path)
        else:
            result.flops_by_module = torch_flops(source)
            if _blocks_export(custom):
                names = ", ".join(op.op_type for op in custom)
                result.notes.append(
                    f"no runtime profile: the model calls {names}, which no ONNX exporter knows; "
                    f"`shipyard build` deploys it split (ONNX Runtime around PyTorch)"
                )
    result.operators += custom
    if measure:
        from shipyard.inspect.machine import measure_machine

        result.machine = measure_machine(threads)
    return result


def count_parameters(source: Source) -> int:
    if source.module is not None and hasattr(source.module, "parameters"):
        return sum(int(p.numel()) for p in source.module.parameters())
    if source.kind == "onnx":
        import math

        import onnx

        model = onnx.load(str(source.path), load_external_data=False)
        return sum(math.prod(t.dims) for t in model.graph.initializer)
    return 0


def _blocks_export(custom: list[OperatorSupport]) -> bool:
    return any(not op.backends.get("onnxruntime") for op in custom)


def _onnx_path(source: Source, scratch: Path, result: Inspection) -> Path | None:
    if source.kind == "onnx":
        return source.path
    from shipyard.convert.onnx_export import export_onnx

    try:
        return export_onnx(source, scratch / "model.onnx").artifact.path
    except ShipyardError as exc:
        result.notes.append(
            f"no runtime profile: the model does not export to ONNX ({str(exc)[:200]})"
        )
        return None


def _custom_operators(source: Source) -> list[OperatorSupport]:
    """Operators no ONNX exporter knows (torch sources): PyTorch runs them, ONNX runtimes do not."""
    from shipyard.split.plan import unknown_ops

    rows = []
    for op in unknown_ops(source):
        rows.append(
            OperatorSupport(
                op.name,
                op.calls,
                {b: b in op.runs_on for b in ("torch", "onnxruntime", "openvino")},
                f"custom op in {op.where}; build deploys it by splitting",
            )
        )
    return rows


def torch_flops(source: Source) -> dict[str, float]:
    """FLOPs per module from PyTorch's own counter (for models that do not export)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from shipyard.inspect.profile import example_feed

    args = [torch.from_numpy(v) for v in example_feed(source.signature).values()]
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        source.module(*args)
    totals: dict[str, Any] = counter.get_flop_counts()
    return {
        ("" if name == "Global" else name): float(sum(ops.values())) for name, ops in totals.items()
    }
