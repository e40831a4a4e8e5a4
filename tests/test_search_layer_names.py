"""Layer names as the user knows them: PyTorch module paths read from both ONNX exporters."""

from __future__ import annotations

import pytest

from shipyard.search.layer_names import module_paths

onnx = pytest.importorskip("onnx")


def test_module_paths_from_dynamo_metadata_and_legacy_node_names(tmp_path):
    from onnx import TensorProto, helper

    dynamo = helper.make_node("Relu", ["x"], ["y"], name="node_relu_3")
    entry = dynamo.metadata_props.add()
    entry.key, entry.value = (
        "pkg.torch.onnx.name_scopes",
        "['', 'features', 'features.3', 'relu_3']",
    )
    legacy = helper.make_node("Relu", ["y"], ["z"], name="/head/head.1/Relu")
    anonymous = helper.make_node("Relu", ["z"], ["w"], name="n7")
    graph = helper.make_graph(
        [dynamo, legacy, anonymous],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert module_paths(path) == {"node_relu_3": "features.3", "/head/head.1/Relu": "head.1"}
