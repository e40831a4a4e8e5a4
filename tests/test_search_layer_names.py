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


def _nested_net():
    torch = pytest.importorskip("torch")
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1)), nn.ReLU())
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.conv(x) + x)

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Block(), Block()).eval()


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_module_paths_of_nested_containers_are_full_paths(tmp_path, dynamo):
    """``/1/conv/conv.0/conv.0.0/Conv`` is ``1.conv.0.0``, not its last scope ``conv.0.0``."""
    import torch

    model = _nested_net()
    path = tmp_path / "nested.onnx"
    example = (torch.zeros(1, 3, 8, 8),)
    if dynamo:
        torch.onnx.export(model, example, dynamo=True, opset_version=18).save(str(path))
    else:
        torch.onnx.export(model, example, str(path), dynamo=False, opset_version=17)
    nodes = {n.name: n.op_type for n in onnx.load(str(path)).graph.node}
    paths = module_paths(path)
    by_op = sorted((nodes[name], module) for name, module in paths.items())
    assert by_op == [
        ("Add", "1"),
        ("Add", "2"),
        ("Conv", "0"),
        ("Conv", "1.conv.0.0"),
        ("Conv", "2.conv.0.0"),
        ("Relu", "1.act"),
        ("Relu", "1.conv.1"),
        ("Relu", "2.act"),
        ("Relu", "2.conv.1"),
    ]
