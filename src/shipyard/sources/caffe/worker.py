"""Runs in a child process beside caffe-onnx: reads the Caffe net, dumps its layers, converts it.

caffe-onnx 0.1.2 ships Caffe's protobuf classes generated for protobuf 3 and installs top-level
packages named ``src`` and ``proto`` (the latter is also proto-plus's); so it lives in a folder of
its own, put first on this child's path only, with protobuf's pure-Python implementation, which
still accepts those classes. The parent never imports it.

    python -m shipyard.sources.caffe.worker NET.prototxt WEIGHTS.caffemodel OUT_DIR

writes ``OUT_DIR/layers.json`` (every layer: name, type, bottoms, tops, parameters), ``blobs.npz``
(the weights, as ``LAYER/INDEX``) and, when every layer is one caffe-onnx converts, ``model.onnx``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# the branches of caffe-onnx 0.1.2's Caffe2Onnx.__getNodeList (a Scale is folded into the BatchNorm
# before it)
CONVERTED = {
    "Input",
    "Convolution",
    "Deconvolution",
    "BatchNorm",
    "BN",
    "Scale",
    "Pooling",
    "MaxUnpool",
    "Eltwise",
    "Softmax",
    "ReLU",
    "LRN",
    "Dropout",
    "Upsample",
    "Concat",
    "Sigmoid",
    "PReLU",
    "InnerProduct",
}


def main(prototxt: str, caffemodel: str, out: str) -> int:
    from google.protobuf import json_format
    from src.caffe2onnx import Caffe2Onnx
    from src.load_save_model import loadcaffemodel

    out_dir = Path(out)
    net, weights = loadcaffemodel(prototxt, caffemodel)
    if len(net.layers) and not len(net.layer):
        return _report(
            out_dir,
            error="the prototxt uses the V1 'layers' format; upgrade it with Caffe's "
            "upgrade_net_proto_text tool",
        )
    layers = [_layer_record(layer, json_format) for layer in net.layer]
    blobs = {
        f"{layer.name}/{i}": _blob_array(blob)
        for layer in weights.layer
        for i, blob in enumerate(layer.blobs)
    }
    np.savez(out_dir / "blobs.npz", **blobs)
    inputs = _net_inputs(net)
    unsupported = _unsupported(layers)
    if not unsupported:
        model = Caffe2Onnx(net, weights, Path(prototxt).stem).createOnnxModel()
        (out_dir / "model.onnx").write_bytes(model.SerializeToString())
    return _report(out_dir, layers=layers, inputs=inputs, unsupported=unsupported)


def _layer_record(layer, json_format) -> dict:
    params = json_format.MessageToDict(layer, preserving_proto_field_name=True)
    params.pop("blobs", None)
    return {
        "name": layer.name,
        "type": layer.type,
        "bottom": list(layer.bottom),
        "top": list(layer.top),
        "params": params,
    }


def _blob_array(blob) -> np.ndarray:
    shape = list(blob.shape.dim) or [d for d in (blob.num, blob.channels, blob.height, blob.width)]
    return np.asarray(blob.data, dtype=np.float32).reshape(shape)


def _net_inputs(net) -> list[dict]:
    if len(net.input):
        dims = list(net.input_dim) or list(net.input_shape[0].dim)
        return [{"name": net.input[0], "shape": [int(d) for d in dims]}]
    return [
        {"name": layer.name, "shape": [int(d) for d in layer.input_param.shape[0].dim]}
        for layer in net.layer
        if layer.type == "Input"
    ]


def _unsupported(layers: list[dict]) -> list[str]:
    found = []
    for index, layer in enumerate(layers):
        after_bn = index > 0 and layers[index - 1]["type"] in ("BatchNorm", "BN")
        if layer["type"] not in CONVERTED:
            found.append(f"{layer['name']} ({layer['type']})")
        elif layer["type"] == "Scale" and not after_bn:
            found.append(f"{layer['name']} (Scale not directly after a BatchNorm)")
        elif layer["type"] in ("BatchNorm", "BN") and (
            index + 1 == len(layers) or layers[index + 1]["type"] != "Scale"
        ):
            found.append(
                f"{layer['name']} (BatchNorm without a Scale after it: caffe-onnx fails on numpy ≥ "
                "1.24)"
            )
    return found


def _report(out_dir: Path, **fields) -> int:
    (out_dir / "layers.json").write_text(json.dumps(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
