"""Layer by layer: where a quantised model's intermediate tensors part from the original's.

Both models run the same feed with every intermediate tensor exposed (ONNX Runtime: extra graph
outputs; other runtimes expose theirs in their own folder: ``backends/<name>/layers.py``), and each
tensor both models share by name is compared.
A tensor's *error* is the mean over channels of ``‖q − f‖ / ‖f‖`` (per channel, so one channel
with a huge range cannot hide the others); the error a layer *introduces* is its output's error
minus the largest error among its inputs. Layers are reported worst first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shipyard.errors import ConversionError

DQ_SUFFIX = "_DequantizeLinear_Output"


@dataclass
class LayerError:
    tensor: str
    node: str
    op_type: str
    error: float
    introduced: float
    cosine: float


@dataclass
class Graph:
    """Who produces and who consumes each tensor of an ONNX graph (node names)."""

    producer: dict[str, tuple[str, str]] = field(default_factory=dict)
    consumers: dict[str, list[str]] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)
    ops: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, path: Path) -> Graph:
        """The graph of an ONNX model; in a QDQ model, Q/DQ pairs are seen through to the tensor
        they carry."""
        import onnx

        graph = cls()
        for node in onnx.load(str(path), load_external_data=False).graph.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                continue
            inputs = [_plain(i) for i in node.input if i]
            graph.inputs[node.name] = inputs
            graph.ops[node.name] = node.op_type
            for name in node.output:
                graph.producer[_plain(name)] = (node.name, node.op_type)
            for name in inputs:
                graph.consumers.setdefault(name, []).append(node.name)
        return graph


def _plain(name: str) -> str:
    for suffix in (DQ_SUFFIX, "_QuantizeLinear_Input"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def tensor_error(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(mean per-channel relative error, cosine) of ``other`` against ``reference``."""
    if reference.shape != other.shape or reference.dtype.kind != "f":
        return float("nan"), float("nan")
    ref, out = reference.astype(np.float64), other.astype(np.float64)
    axis = 1 if ref.ndim == 4 else ref.ndim - 1
    ref_c = (
        np.moveaxis(ref, axis, 0).reshape(ref.shape[axis], -1) if ref.ndim else ref.reshape(1, 1)
    )
    out_c = np.moveaxis(out, axis, 0).reshape(ref_c.shape) if ref.ndim else out.reshape(1, 1)
    norms = np.linalg.norm(ref_c, axis=1)
    live = norms > 1e-12 * max(float(norms.max(initial=0)), 1e-30)
    if not live.any():
        return 0.0, 1.0
    rel = np.linalg.norm(out_c - ref_c, axis=1)[live] / norms[live]
    flat_r, flat_o = ref.ravel(), out.ravel()
    cosine = float(flat_r @ flat_o / max(np.linalg.norm(flat_r) * np.linalg.norm(flat_o), 1e-30))
    return float(np.minimum(rel, 10.0).mean()), cosine


def rank_layers(
    graph: Graph, reference: dict[str, np.ndarray], quantized: dict[str, np.ndarray]
) -> list[LayerError]:
    """Every tensor both runs share, with the error it shows and the error its layer adds, worst
    first."""
    errors: dict[str, tuple[float, float]] = {}
    for name, value in reference.items():
        other = quantized.get(name + DQ_SUFFIX, quantized.get(name))
        if other is not None:
            errors[name] = tensor_error(value, other)
    rows = []
    for name, (error, cosine) in errors.items():
        if not np.isfinite(error) or name not in graph.producer:
            continue
        node, op_type = graph.producer[name]
        before = max(
            (_upstream_error(graph, errors, i) for i in graph.inputs.get(node, [])), default=0.0
        )
        rows.append(LayerError(name, node, op_type, error, error - before, cosine))
    return sorted(rows, key=lambda r: r.introduced, reverse=True)


def _upstream_error(
    graph: Graph, errors: dict[str, tuple[float, float]], tensor: str, depth: int = 8
) -> float:
    """The error of ``tensor``, or of the nearest tensors above it both runs expose."""
    known = errors.get(tensor)
    if known is not None and np.isfinite(known[0]):
        return known[0]
    if depth == 0 or tensor not in graph.producer:
        return 0.0
    node = graph.producer[tensor][0]
    return max(
        (_upstream_error(graph, errors, i, depth - 1) for i in graph.inputs.get(node, [])),
        default=0.0,
    )


def onnx_intermediates(
    path: Path, feed: dict[str, np.ndarray], threads: int = 1
) -> dict[str, np.ndarray]:
    """Every float tensor of an ONNX model on ``feed``, run by ONNX Runtime with each one
    exposed."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    known = {o.name for o in model.graph.output}
    names = [o for node in model.graph.node for o in node.output if o and o not in known]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        outputs = [o.name for o in session.get_outputs()]
        values = session.run(outputs, feed)
    except Exception as exc:
        raise ConversionError(
            f"cannot expose the intermediate tensors of {path.name}: {exc}"
        ) from exc
    return {
        n: v for n, v in zip(outputs, values) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
    }
