"""A per-node time profile from ONNX Runtime's own profiler (batch 1, after warm-up).

Basic graph optimisations only, so the nodes are the model's own layers (not fused kernels)
and each keeps the shapes FLOPs are counted from.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from shipyard.inspect.flops import MATMUL, node_flops
from shipyard.inspect.records import LayerProfile
from shipyard.records import Signature


def profile_onnx(
    path: Path, feed: dict[str, np.ndarray], threads: int, runs: int = 5
) -> list[LayerProfile]:
    """Run ``runs`` times with profiling; each node's time is its median over the runs."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="shipyard-profile-") as scratch:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "profile")
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(2 + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    layers = _layers(events, warmup=2)
    scopes = module_paths(path)
    for layer in layers:
        layer.module = scopes.get(layer.name, "")
    return layers


def module_paths(path: Path) -> dict[str, str]:
    """ONNX node name → the PyTorch module path it was exported from, where recorded."""
    import ast

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    paths = {}
    for node in model.graph.node:
        scopes = next(
            (p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None
        )
        if scopes:
            try:
                names = ast.literal_eval(scopes)
            except (ValueError, SyntaxError):
                continue
            paths[node.name] = names[-2] if len(names) > 1 else "<root>"
    return paths


def _layers(events: list[dict], warmup: int) -> list[LayerProfile]:
    times: dict[str, list[float]] = defaultdict(list)
    first: dict[str, dict] = {}
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        times[name].append(float(event.get("dur", 0)))
        first.setdefault(name, event["args"])
    layers = []
    for name, args in first.items():
        inputs = [_shape(s) for s in args.get("input_type_shape", [])]
        outputs = [_shape(s) for s in args.get("output_type_shape", [])]
        moved = sum(
            float(args.get(k, 0) or 0) for k in ("activation_size", "parameter_size", "output_size")
        )
        moved += _unlisted_weight_bytes(args.get("op_name", ""), inputs, outputs)
        kept = times[name][warmup:] or times[name]
        layers.append(
            LayerProfile(
                name,
                args.get("op_name", "?"),
                node_flops(args.get("op_name", ""), inputs, outputs),
                moved,
                float(np.median(kept)),
                outputs[0] if outputs else [],
            )
        )
    return layers


def _unlisted_weight_bytes(
    op_type: str, inputs: list[list[int]], outputs: list[list[int]]
) -> float:
    """A MatMul's pre-packed constant weight (ORT lists neither its shape nor its size): K × N
    floats."""
    if op_type in MATMUL and len(inputs) == 1 and inputs[0] and outputs and outputs[0]:
        return 4.0 * inputs[0][-1] * outputs[0][-1]
    return 0.0


def _shape(entry: dict) -> list[int]:
    return [int(d) for d in next(iter(entry.values()), [])] if entry else []


def example_feed(signature: Signature) -> dict[str, np.ndarray]:
    """Batch-1 inputs: symbolic dims become 1 (batch) or 16 (sequence), int inputs are ones."""
    feed = {}
    for spec in signature.inputs:
        shape = [
            d if isinstance(d, int) else (1 if i == 0 else 16) for i, d in enumerate(spec.shape)
        ]
        if spec.dtype.startswith(("int", "uint", "bool")):
            feed[spec.name] = np.ones(shape, dtype=spec.dtype)
        else:
            feed[spec.name] = np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)
    return feed
