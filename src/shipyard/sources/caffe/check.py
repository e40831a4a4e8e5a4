"""The converted Caffe graph checked layer by layer against Caffe's arithmetic (``arithmetic.py``).

Every layer's bottoms are taken from the converted graph itself, so each layer is checked on its
own: a wrong layer is named, not smeared over the rest of the net. The graph runs at batch 2, which
also proves its batch axis is really dynamic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from shipyard.sources.caffe.arithmetic import LAYERS, scale

TOLERANCE = 1e-4
"""Largest error allowed, relative to the largest magnitude of the layer's output (float32 vs
float64)."""


@dataclass
class LayerCheck:
    name: str
    type: str
    checked: bool
    error: float = 0.0
    """max |converted − Caffe| / max |Caffe|."""
    problem: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _Step:
    layer: dict
    bottoms: list[str]
    top: str
    """The converted graph's tensor for the layer's (single) top."""
    folded_scale: dict | None = None


def check_layers(
    onnx_path: Path, report: dict, blobs: dict[str, np.ndarray], batch: int = 2
) -> list[LayerCheck]:
    """One ``LayerCheck`` per converted layer (Input and folded Scale layers excepted)."""
    steps = _steps(report["layers"])
    values = _run_with_intermediates(onnx_path, report["inputs"], steps, batch)
    return [_check(step, values, blobs) for step in steps]


def _steps(layers: list[dict]) -> list[_Step]:
    """Which converted tensor holds each blob, following caffe-onnx's naming (in-place layers are
    named
    after the layer; a Scale after a BatchNorm is folded into it)."""
    current: dict[str, str] = {}
    steps: list[_Step] = []
    for layer in layers:
        if layer["type"] == "Input":
            current[layer["top"][0]] = layer["name"]
            continue
        if layer["type"] == "Scale" and steps and steps[-1].layer["type"] in ("BatchNorm", "BN"):
            steps[-1].folded_scale = layer
            current[layer["top"][0]] = steps[-1].top
            continue
        in_place = (
            layer["top"] == layer["bottom"]
            and len(layer["top"]) == 1
            and layer["type"] != "InnerProduct"
        )
        top = layer["name"] if in_place else layer["top"][0]
        steps.append(_Step(layer, [current[b] for b in layer["bottom"]], top))
        current[layer["top"][0]] = top
    return steps


def _run_with_intermediates(
    onnx_path: Path, inputs: list[dict], steps: list[_Step], batch: int
) -> dict:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    present = {o.name for o in model.graph.output}
    names = list(dict.fromkeys(t for s in steps for t in (*s.bottoms, s.top)))
    for name in names:
        if name not in present:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )  # keep every tensor as written
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    feed = {
        i["name"]: rng.standard_normal([batch, *i["shape"][1:]]).astype(np.float32) for i in inputs
    }
    wanted = [n for n in names if n not in feed]
    return {**feed, **dict(zip(wanted, session.run(wanted, feed)))}


def _check(step: _Step, values: dict, blobs: dict[str, np.ndarray]) -> LayerCheck:
    layer = step.layer
    label = layer["type"] + ("+Scale" if step.folded_scale else "")
    compute = LAYERS.get(layer["type"])
    if compute is None:
        return LayerCheck(layer["name"], label, checked=False)
    bottoms = [values[b].astype(np.float64) for b in step.bottoms]
    expected = compute(bottoms, _blobs_of(layer["name"], blobs), layer["params"])
    if step.folded_scale:
        scale_layer = step.folded_scale
        expected = scale([expected], _blobs_of(scale_layer["name"], blobs), scale_layer["params"])
    got = values[step.top]
    if got.shape != expected.shape:
        return LayerCheck(
            layer["name"],
            label,
            True,
            float("inf"),
            f"gives shape {list(got.shape)}, Caffe's arithmetic {list(expected.shape)}",
        )
    error = float(np.abs(got - expected).max() / max(float(np.abs(expected).max()), 1e-6))
    problem = (
        f"differs from Caffe's arithmetic by {error:.2e} (relative)"
        if not error <= TOLERANCE
        else ""
    )
    return LayerCheck(layer["name"], label, True, error, problem)


def _blobs_of(layer: str, blobs: dict[str, np.ndarray]) -> list[np.ndarray]:
    found = []
    while f"{layer}/{len(found)}" in blobs:
        found.append(blobs[f"{layer}/{len(found)}"].astype(np.float64))
    return found
