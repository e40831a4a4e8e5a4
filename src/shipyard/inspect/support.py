"""Which backend runs which operator: ONNX Runtime's CPU kernels and OpenVINO's CPU plugin."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from shipyard.inspect.records import OperatorSupport


def operator_support(path: Path) -> list[OperatorSupport]:
    """Every operator type in the ONNX model, with its count and per-backend support."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts = Counter((n.domain or "", n.op_type) for n in model.graph.node)
    ort_ops = _ort_kernels()
    openvino = _openvino_ops(path)
    rows = []
    for (domain, op_type), count in sorted(counts.items(), key=lambda kv: -kv[1]):
        runs = ort_ops is not None and ((domain, op_type) in ort_ops or _expands(domain, op_type))
        backends = {"onnxruntime": runs}
        note = ""
        if openvino is not None:
            backends["openvino"] = op_type in openvino[0]
            note = openvino[1]
        label = f"{domain}::{op_type}" if domain not in ("", "ai.onnx") else op_type
        rows.append(OperatorSupport(label, count, backends, note))
    return rows


def _expands(domain: str, op_type: str) -> bool:
    """ONNX ops defined by a function body (HardSwish, …): runtimes without a kernel inline them."""
    import onnx

    try:
        schema = onnx.defs.get_schema(op_type, domain=domain)
    except Exception:  # onnx raises SchemaError for unknown ops
        return False
    return bool(schema.has_function or schema.has_context_dependent_function)


def _ort_kernels() -> set[tuple[str, str]] | None:
    try:
        from onnxruntime.capi import _pybind_state as C
    except ImportError:
        return None
    kernels = set()
    for kernel in C.get_all_opkernel_def():
        if kernel.provider == "CPUExecutionProvider":
            domain = "" if kernel.domain in ("", "ai.onnx") else kernel.domain
            kernels.add((domain, kernel.op_name))
    return kernels


def _openvino_ops(path: Path) -> tuple[set[str], str] | None:
    """Op types OpenVINO's CPU plugin takes: all when the model converts and every node is
    supported by ``query_model``; else only the types whose nodes survived."""
    try:
        import onnx
        import openvino as ov
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    types = {n.op_type for n in model.graph.node}
    try:
        core = ov.Core()
        converted = core.read_model(str(path))
        supported = core.query_model(converted, "CPU")
    except Exception as exc:
        return set(), f"openvino cannot convert the model: {type(exc).__name__}: {str(exc)[:120]}"
    unsupported = {
        op.get_type_name() for op in converted.get_ops() if op.get_friendly_name() not in supported
    }
    return (types if not unsupported else types - unsupported), ""
