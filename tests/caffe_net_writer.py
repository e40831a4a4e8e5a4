"""Writes a small Caffe net (prototxt + caffemodel) from Caffe's protobuf definition, with seeded
weights.

Run in the caffe-onnx child environment (``shipyard.frameworks.caffe.converter.child_env``), the
only
place Caffe's generated classes import: ``python caffe_net_writer.py OUT_DIR [VARIANT]``.
"""

import sys
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from proto import caffe_upsample_pb2 as caffe_pb2

RNG = np.random.default_rng(0)


def add(net, name, type_, bottom, top, **params):
    layer = net.layer.add(
        name=name, type=type_, bottom=[bottom] if isinstance(bottom, str) else bottom, top=[top]
    )
    for field, values in params.items():
        getattr(layer, field).CopyFrom(values)
    return layer


def blob(layer, array):
    b = layer.blobs.add()
    b.shape.dim.extend(array.shape)
    b.data.extend(array.astype(np.float32).ravel().tolist())


def build(variant: str):
    net = caffe_pb2.NetParameter(name="tinynet")
    data = net.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add(dim=[1, 3, 12, 12])
    add(
        net,
        "conv1",
        "Convolution",
        "data",
        "conv1",
        convolution_param=caffe_pb2.ConvolutionParameter(num_output=8, kernel_size=[3], pad=[1]),
    )
    add(net, "bn1", "BatchNorm", "conv1", "conv1")
    add(
        net,
        "scale1",
        "Scale",
        "conv1",
        "conv1",
        scale_param=caffe_pb2.ScaleParameter(bias_term=True),
    )
    add(net, "relu1", "ReLU", "conv1", "conv1")
    if (
        variant == "avepad"
    ):  # Caffe's average counts the padding; ONNX AveragePool by default does not
        pool = caffe_pb2.PoolingParameter(
            pool=caffe_pb2.PoolingParameter.AVE, kernel_size=3, stride=2, pad=1
        )
    else:  # 12 → 6: Caffe rounds the pooled size up
        pool = caffe_pb2.PoolingParameter(
            pool=caffe_pb2.PoolingParameter.MAX, kernel_size=3, stride=2
        )
    add(net, "pool1", "Pooling", "conv1", "pool1", pooling_param=pool)
    add(
        net,
        "conv2",
        "Convolution",
        "pool1",
        "conv2",
        convolution_param=caffe_pb2.ConvolutionParameter(
            num_output=8, kernel_size=[3], pad=[1], group=2
        ),
    )
    add(net, "relu2", "ReLU", "conv2", "conv2")
    if variant == "tanh":
        add(net, "tanh", "TanH", "conv2", "conv2")
    add(
        net,
        "fc",
        "InnerProduct",
        "conv2",
        "fc",
        inner_product_param=caffe_pb2.InnerProductParameter(num_output=5),
    )
    add(net, "prob", "Softmax", "fc", "prob")
    weights = caffe_pb2.NetParameter()
    weights.CopyFrom(net)
    side = 7 if variant == "avepad" else 6
    for layer in weights.layer:
        _fill(layer, side)
    return net, weights


def _fill(layer, side):
    if layer.type == "Convolution":
        p = layer.convolution_param
        channels_in = {"conv1": 3, "conv2": 8}[layer.name] // max(p.group, 1)
        blob(layer, RNG.normal(0, 0.4, (p.num_output, channels_in, 3, 3)))
        blob(layer, RNG.normal(0, 0.1, (p.num_output,)))
    elif layer.type == "BatchNorm":
        blob(layer, RNG.normal(0, 0.2, (8,)) * 4)  # mean × scale factor 4
        blob(layer, RNG.uniform(0.5, 1.5, (8,)) * 4)  # variance × scale factor 4
        blob(layer, np.array([4.0]))
    elif layer.type == "Scale":
        blob(layer, RNG.uniform(0.5, 1.5, (8,)))
        blob(layer, RNG.normal(0, 0.1, (8,)))
    elif layer.type == "InnerProduct":
        blob(layer, RNG.normal(0, 0.2, (5, 8 * side * side)))
        blob(layer, RNG.normal(0, 0.1, (5,)))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    variant = sys.argv[2] if len(sys.argv) > 2 else "plain"
    out.mkdir(parents=True, exist_ok=True)
    net, weights = build(variant)
    (out / "net.prototxt").write_text(text_format.MessageToString(net))
    (out / "net.caffemodel").write_bytes(weights.SerializeToString())
