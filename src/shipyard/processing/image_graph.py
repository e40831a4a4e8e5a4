"""Image pre-processing as an ONNX graph, run by the runtime (batched, no Python per pixel).

    pixels  UINT8 [batch, height, width, 3]  (decoded RGB; any height and width)
      → Cast → Transpose to NCHW → Resize (bilinear, antialiased, shorter side or fixed size)
      → centre crop (Slice) → × scale → (x − mean) / std → layout → dtype
    image   FP32 [batch, 3, crop_h, crop_w]  (or NHWC / FP16, as configured)

The arithmetic follows torchvision's ``Resize`` → ``CenterCrop`` → ``Normalize`` (integer sizes,
round-half-to-even crop offsets; ``exclude_outside`` renormalises the antialias filter at the
borders as PyTorch does), so the package sees what the PyTorch pipeline sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.processing.config import ImagePre

OPSET = 18
"""Resize's ``antialias`` attribute needs opset 18."""
PIXELS = "pixels"


def image_graph(config: ImagePre, output: str) -> Any:
    """The ONNX model that turns a batch of decoded pixels into the model's ``output`` input."""
    from onnx import TensorProto, helper

    nodes: list = []
    inits: list = []
    const = _constants(inits)
    nodes.append(helper.make_node("Cast", [PIXELS], ["as_float"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Transpose", ["as_float"], ["nchw"], perm=[0, 3, 1, 2]))
    current = "nchw"
    if config.resize is not None:
        current = _resize(nodes, const, current, config)
    if config.crop is not None:
        current = _crop(nodes, const, current, config.crop)
    nodes.append(
        helper.make_node("Mul", [current, const("scale", np.float32(config.scale))], ["scaled"])
    )
    mean = np.asarray(config.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(config.std, np.float32).reshape(1, 3, 1, 1)
    nodes.append(helper.make_node("Sub", ["scaled", const("mean", mean)], ["centred"]))
    nodes.append(helper.make_node("Div", ["centred", const("std", std)], ["normalised"]))
    current = "normalised"
    if config.layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [current], ["nhwc"], perm=[0, 2, 3, 1]))
        current = "nhwc"
    elem = TensorProto.FLOAT16 if config.dtype == "float16" else TensorProto.FLOAT
    nodes.append(helper.make_node("Cast", [current], [output], to=elem))
    height, width = config.output_size
    shape = ["batch", 3, height, width] if config.layout == "NCHW" else ["batch", height, width, 3]
    graph = helper.make_graph(
        nodes,
        "shipyard_image_preprocess",
        [helper.make_tensor_value_info(PIXELS, TensorProto.UINT8, ["batch", "height", "width", 3])],
        [helper.make_tensor_value_info(output, elem, shape)],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="shipyard"
    )


def _constants(inits: list):
    from onnx import numpy_helper

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    return const


def _resize(nodes: list, const, current: str, config: ImagePre) -> str:
    """Shorter side to ``resize[0]`` (floor of the scaled longer side), or a fixed [h, w]."""
    from onnx import helper

    nodes.append(helper.make_node("Shape", [current], ["shape"]))
    nodes.append(
        helper.make_node(
            "Slice",
            ["shape", const("zero1", np.array([0])), const("two1", np.array([2]))],
            ["batch_channels"],
        )
    )
    if len(config.resize) == 2:
        sizes = const("fixed_hw", np.asarray(config.resize, np.int64))
    else:
        nodes.append(
            helper.make_node("Slice", ["shape", "two1", const("four1", np.array([4]))], ["hw"])
        )
        nodes.append(helper.make_node("ReduceMin", ["hw"], ["short"], keepdims=1))
        nodes.append(
            helper.make_node(
                "Mul",
                ["hw", const("target", np.array([config.resize[0]], np.int64))],
                ["hw_scaled"],
            )
        )
        nodes.append(helper.make_node("Div", ["hw_scaled", "short"], ["new_hw"]))
        sizes = "new_hw"
    nodes.append(helper.make_node("Concat", ["batch_channels", sizes], ["sizes"], axis=0))
    nodes.append(
        helper.make_node(
            "Resize",
            [current, "", "", "sizes"],
            ["resized"],
            mode="linear",
            antialias=int(config.antialias),
            exclude_outside=int(config.antialias),
            coordinate_transformation_mode="half_pixel",
        )
    )
    return "resized"


def _crop(nodes: list, const, current: str, crop: tuple[int, int]) -> str:
    """Centre crop; offsets are round((size − crop) / 2), half to even, as in torchvision."""
    from onnx import TensorProto, helper

    nodes.append(helper.make_node("Shape", [current], ["crop_shape"], start=2, end=4))
    nodes.append(
        helper.make_node(
            "Sub", ["crop_shape", const("crop_hw", np.asarray(crop, np.int64))], ["spare"]
        )
    )
    nodes.append(helper.make_node("Cast", ["spare"], ["spare_f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Div", ["spare_f", const("two_f", np.float32(2))], ["half_f"]))
    nodes.append(helper.make_node("Round", ["half_f"], ["offset_f"]))
    nodes.append(helper.make_node("Cast", ["offset_f"], ["starts"], to=TensorProto.INT64))
    nodes.append(helper.make_node("Add", ["starts", "crop_hw"], ["ends"]))
    nodes.append(
        helper.make_node(
            "Slice", [current, "starts", "ends", const("axes_hw", np.array([2, 3]))], ["cropped"]
        )
    )
    return "cropped"
