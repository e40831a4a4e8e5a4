"""Post-processing as ONNX graphs: softmax + top-k for classifiers, L2 normalisation for embeddings.

Label names are looked up in Python from the top-k indices (a string tensor is not something
every runtime carries); everything numeric runs in the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.processing.config import PostProcess

OPSET = 18


def classify_graph(post: PostProcess, logits: str, classes: int) -> Any:
    """``logits`` FP32 [batch, classes] → ``scores`` FP32 [batch, k] and ``indices`` INT64 [batch,
    k]."""
    from onnx import TensorProto, helper, numpy_helper

    k = min(post.top_k, classes)
    nodes = [
        helper.make_node("Softmax", [logits], ["probabilities"], axis=-1),
        helper.make_node(
            "TopK", ["probabilities", "k"], ["scores", "indices"], axis=-1, largest=1, sorted=1
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "shipyard_classify",
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["batch", classes])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", k]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["batch", k]),
        ],
        [numpy_helper.from_array(np.array([k], np.int64), "k")],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="shipyard"
    )


def embed_graph(output: str, width: int) -> Any:
    """``output`` FP32 [batch, width] → ``embedding`` with unit L2 norm per row (ε-guarded)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceL2", [output, "last_axis"], ["norm"], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["safe_norm"]),
        helper.make_node("Div", [output, "safe_norm"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "shipyard_embed",
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", width])],
        [
            numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
            numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
        ],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="shipyard"
    )
