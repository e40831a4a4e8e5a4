"""Detector post-processing: box decoding and NonMaxSuppression in an ONNX graph.

For SSD/RetinaNet-style heads (torchvision's conventions)::

    class_logits     FP32 [batch, anchors, classes]   (class 0 = background, softmax)
    box_regression   FP32 [batch, anchors, 4]         (dx, dy, dw, dh against fixed anchors)
    original_hw      FP32 [batch, 2]                  (decoded image sizes, to scale boxes back)
      → softmax → decode against the anchors (weights 10, 10, 5, 5; dw/dh clamped) → clip to
        the model's input → NonMaxSuppression per class (ONNX op) → scale to the original image
    selected  INT64 [n, 3] (batch, class, anchor) · selected_scores [n] · selected_boxes [n, 4]

The last step — each image's best ``max_detections`` by score, padded to a fixed count so a
batch stays rectangular — is a sort of a few hundred rows, done in numpy (``run_detect``).
Options (``postprocess`` in the config): ``anchors`` (an .npy file of [anchors, 4] x1y1x2y2),
``input_size`` [h, w], ``score_threshold`` (0.3), ``iou_threshold`` (0.55), ``max_detections``
(20), ``box_weights`` ([10, 10, 5, 5]), ``logits`` and ``boxes`` (the model's output names).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shipyard.errors import UsageError
from shipyard.processing.config import ImagePre, PostProcess
from shipyard.records import Signature, TensorSpec

OPSET = 18
CLAMP = math.log(1000.0 / 16)


def detection_outputs(post: PostProcess) -> tuple[TensorSpec, ...]:
    count = int(post.options.get("max_detections", 20))
    return (
        TensorSpec("boxes", "float32", ("batch", count, 4)),
        TensorSpec("scores", "float32", ("batch", count)),
        TensorSpec("classes", "int64", ("batch", count)),
        TensorSpec("labels", "bytes", ("batch", count)),
        TensorSpec("count", "int64", ("batch",)),
    )


def detect_graph(post: PostProcess, model: Signature, image: ImagePre | None) -> Any:
    """The ONNX graph described above, with the anchors baked in as a constant."""
    from onnx import TensorProto, helper, numpy_helper

    options = post.options
    if "anchors" not in options:
        raise UsageError(
            "postprocess kind detect needs 'anchors': an .npy file of [anchors, 4] boxes (x1, y1, "
            "x2, y2)"
        )
    anchors = np.load(options["anchors"]).astype(np.float32)
    logits, boxes = (
        options.get("logits", model.output_names[0]),
        options.get("boxes", model.output_names[1]),
    )
    height, width = options.get("input_size") or (image.output_size if image else (None, None))
    if height is None:
        raise UsageError(
            "postprocess kind detect needs input_size [h, w] when there is no image pre-processing"
        )
    classes = int(next(s for s in model.outputs if s.name == logits).shape[-1])
    init = _initialisers(anchors, options, height, width)
    nodes = _decode_nodes(logits, boxes) + _nms_nodes()
    graph = helper.make_graph(
        nodes,
        "shipyard_detect",
        [
            helper.make_tensor_value_info(
                logits, TensorProto.FLOAT, ["batch", len(anchors), classes]
            ),
            helper.make_tensor_value_info(boxes, TensorProto.FLOAT, ["batch", len(anchors), 4]),
            helper.make_tensor_value_info("original_hw", TensorProto.FLOAT, ["batch", 2]),
        ],
        [
            helper.make_tensor_value_info("selected", TensorProto.INT64, ["n", 3]),
            helper.make_tensor_value_info("selected_scores", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("selected_boxes", TensorProto.FLOAT, ["n", 4]),
        ],
        [numpy_helper.from_array(v, k) for k, v in init.items()],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="shipyard"
    )


def _initialisers(
    anchors: np.ndarray, options: dict, height: int, width: int
) -> dict[str, np.ndarray]:
    wx, wy, ww, wh = (float(w) for w in options.get("box_weights", (10, 10, 5, 5)))
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    return {
        "anchor_wh": np.stack([widths, heights], 1)[None],
        "anchor_centre": np.stack([anchors[:, 0] + 0.5 * widths, anchors[:, 1] + 0.5 * heights], 1)[
            None
        ],
        "centre_weights": np.array([wx, wy], np.float32),
        "size_weights": np.array([ww, wh], np.float32),
        "clamp": np.array(CLAMP, np.float32),
        "half": np.array(0.5, np.float32),
        "zero_f": np.array(0.0, np.float32),
        "input_hw": np.array([height, width], np.float32),
        "max_w": np.array([width, height, width, height], np.float32),
        "starts_c": np.array([1], np.int64),
        "ends_c": np.array([1 << 30], np.int64),
        "axis_c": np.array([2], np.int64),
        "at_0": np.array([0, 1], np.int64),
        "at_2": np.array([2, 3], np.int64),
        "max_out": np.array([int(options.get("max_detections", 20))], np.int64),
        "iou": np.array([float(options.get("iou_threshold", 0.55))], np.float32),
        "score_min": np.array([float(options.get("score_threshold", 0.3))], np.float32),
        "col_b": np.array([0], np.int64),
        "col_c": np.array([1], np.int64),
        "col_i": np.array([2], np.int64),
        "flip": np.array([1, 0, 1, 0], np.int64),
    }


def _decode_nodes(logits: str, boxes: str) -> list:
    from onnx import helper

    n = helper.make_node
    return [
        n("Softmax", [logits], ["probabilities"], axis=-1),
        n("Slice", ["probabilities", "starts_c", "ends_c", "axis_c"], ["foreground"]),
        n("Transpose", ["foreground"], ["class_scores"], perm=[0, 2, 1]),
        n("Gather", [boxes, "at_0"], ["d_xy"], axis=2),
        n("Gather", [boxes, "at_2"], ["d_wh"], axis=2),
        n("Div", ["d_xy", "centre_weights"], ["dxy"]),
        n("Div", ["d_wh", "size_weights"], ["dwh_raw"]),
        n("Min", ["dwh_raw", "clamp"], ["dwh"]),
        n("Mul", ["dxy", "anchor_wh"], ["shift"]),
        n("Add", ["shift", "anchor_centre"], ["centre"]),
        n("Exp", ["dwh"], ["scale_wh"]),
        n("Mul", ["scale_wh", "anchor_wh"], ["size"]),
        n("Mul", ["size", "half"], ["half_size"]),
        n("Sub", ["centre", "half_size"], ["top_left"]),
        n("Add", ["centre", "half_size"], ["bottom_right"]),
        n("Concat", ["top_left", "bottom_right"], ["decoded"], axis=2),
        n("Max", ["decoded", "zero_f"], ["clip_low"]),
        n("Min", ["clip_low", "max_w"], ["clipped"]),
    ]


def _nms_nodes() -> list:
    from onnx import helper

    n = helper.make_node
    return [
        n(
            "NonMaxSuppression",
            ["clipped", "class_scores", "max_out", "iou", "score_min"],
            ["selected"],
            center_point_box=0,
        ),
        n("GatherND", ["class_scores", "selected"], ["selected_scores"]),
        n("Gather", ["selected", "col_b"], ["sel_b"], axis=1),
        n("Gather", ["selected", "col_i"], ["sel_i"], axis=1),
        n("Concat", ["sel_b", "sel_i"], ["box_index"], axis=1),
        n("GatherND", ["clipped", "box_index"], ["input_boxes"]),
        # scale from the model's input size to each image's own size (x by width, y by height)
        n("Div", ["original_hw", "input_hw"], ["ratio_hw"]),
        n("Gather", ["ratio_hw", "flip"], ["ratio_xyxy"], axis=1),
        n("Squeeze", ["sel_b", "col_c"], ["sel_b_flat"]),
        n("Gather", ["ratio_xyxy", "sel_b_flat"], ["box_ratio"], axis=0),
        n("Mul", ["input_boxes", "box_ratio"], ["selected_boxes"]),
    ]


def run_detect(
    session: Any,
    outputs: dict[str, np.ndarray],
    sizes: np.ndarray,
    post: PostProcess,
    labels: np.ndarray | None,
    names: tuple[str, str],
) -> dict[str, np.ndarray]:
    """Model outputs → each image's best detections, padded to ``max_detections``."""
    feed = {
        names[0]: np.ascontiguousarray(outputs[names[0]], np.float32),
        names[1]: np.ascontiguousarray(outputs[names[1]], np.float32),
        "original_hw": np.asarray(sizes, np.float32),
    }
    selected, scores, boxes = session.run(None, feed)
    return pad_detections(
        selected, scores, boxes, len(sizes), int(post.options.get("max_detections", 20)), labels
    )


def pad_detections(
    selected: np.ndarray,
    scores: np.ndarray,
    boxes: np.ndarray,
    batch: int,
    keep: int,
    labels: np.ndarray | None,
) -> dict[str, np.ndarray]:
    out = {
        "boxes": np.zeros((batch, keep, 4), np.float32),
        "scores": np.zeros((batch, keep), np.float32),
        "classes": np.full((batch, keep), -1, np.int64),
        "labels": np.full((batch, keep), b"", dtype=object),
        "count": np.zeros(batch, np.int64),
    }
    for image in range(batch):
        rows = np.flatnonzero(selected[:, 0] == image)
        rows = rows[np.argsort(-scores[rows], kind="stable")][:keep]
        count = len(rows)
        out["count"][image] = count
        out["boxes"][image, :count] = boxes[rows]
        out["scores"][image, :count] = scores[rows]
        classes = selected[rows, 1] + 1  # class 0 is the background, sliced off before NMS
        out["classes"][image, :count] = classes
        out["labels"][image, :count] = [
            labels[c] if labels is not None else f"class_{c}".encode() for c in classes
        ]
    return out
