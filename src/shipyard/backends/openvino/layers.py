"""OpenVINO's intermediate tensors, for the layer-by-layer comparison
(``shipyard.quantize.layerwise``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def openvino_intermediates(
    path: Path, feed: dict[str, np.ndarray], names: set[str] | None = None, threads: int = 1
) -> dict[str, np.ndarray]:
    """Named float tensors of an OpenVINO model on ``feed`` (tensor names kept from the ONNX
    model)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    ports, labels = [], []
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Parameter", "Constant", "Result"):
            continue
        for port in op.outputs():
            wanted = [n for n in port.get_names() if names is None or n in names]
            if wanted:
                ports.append(port)
                labels.append(sorted(wanted)[0])
    model.add_outputs(ports)
    compiled = core.compile_model(
        model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    )
    results = compiled.create_infer_request().infer(feed)
    values = {}
    for output in compiled.outputs:
        for name in output.get_names():
            if name in labels:
                value = np.array(results[output])
                if value.dtype.kind == "f":
                    values[name] = value
    return values
