"""``shipyard inspect``: FLOPs counted right on a model whose FLOPs are known, a real ORT profile,
operator support per backend, custom ops named, the built-in examples, and the CLI."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.backend("onnxruntime")

from shipyard.inspect import format_text, inspect_model  # noqa: E402


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """Conv(3→8, 3×3, pad 1) on 16×16 → flatten → Linear(2048→5): FLOPs known by hand."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 16 * 16, 5),
    ).eval()
    path = tmp_path_factory.mktemp("inspect") / "tiny.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 16, 16),),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return path


def test_flops_parameters_and_profile_of_an_onnx_file(onnx_file):
    result = inspect_model(str(onnx_file), measure=False)
    conv = 2 * (8 * 16 * 16) * 3 * 3 * 3
    linear = 2 * 5 * 2048
    by_op = {layer.op_type: layer for layer in result.layers}
    assert by_op["Conv"].flops == conv
    assert by_op["Gemm"].flops == linear
    assert result.parameters == 8 * 3 * 9 + 8 + 2048 * 5 + 5
    assert (
        conv + linear <= result.total_flops <= conv + linear + 8 * 16 * 16 * 2
    )  # + ReLU and friends
    assert all(layer.time_us > 0 for layer in result.layers) and result.total_time_us > 0
    assert by_op["Conv"].bytes > 0 and by_op["Conv"].intensity > 1
    support = {op.op_type: op.backends for op in result.operators}
    assert support["Conv"]["onnxruntime"] and support["Gemm"]["onnxruntime"]
    assert "openvino" in support["Conv"]
    assert [s.name for s in result.signature.inputs] == ["image"]


def test_machine_peak_and_report_text(onnx_file):
    result = inspect_model(str(onnx_file), measure=True)
    assert result.machine.peak_gflops > 0.1 and result.machine.bandwidth_gbs > 0.1
    text = format_text(result)
    for words in (
        "parameters",
        "FLOPs (batch 1)",
        "peak",
        "layers where time goes",
        "operators:",
        "Conv",
    ):
        assert words in text
    data = result.to_json()
    assert data["machine"]["ridge_flops_per_byte"] > 0 and len(data["layers"]) == len(result.layers)


def test_operator_support_marks_what_a_runtime_lacks(tmp_path):
    """A node in a domain no runtime implements is reported unsupported (no crash)."""
    import onnx
    from onnx import TensorProto, helper

    from shipyard.inspect.support import operator_support

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["y"]),
            helper.make_node("Gate", ["y"], ["z"], domain="com.example"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(model, tmp_path / "custom.onnx")
    rows = {r.op_type: r for r in operator_support(tmp_path / "custom.onnx")}
    assert rows["Relu"].backends["onnxruntime"] is True
    assert rows["com.example::Gate"].backends["onnxruntime"] is False
    assert rows["com.example::Gate"].backends.get("openvino") is False


def test_a_custom_op_model_names_the_op_and_counts_torch_flops():
    import custom_op_model as demo

    from shipyard.sources import InputHint

    result = inspect_model(
        f"{demo.__file__}:make_model",
        hints=[InputHint("image", "float32", (3, 16, 16))],
        measure=False,
    )
    custom = [op for op in result.operators if op.op_type == demo.OP_NAME]
    assert custom and custom[0].backends == {"torch": True, "onnxruntime": False, "openvino": False}
    assert result.total_flops > 0 and any("no ONNX exporter knows" in n for n in result.notes)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits", "minilm", "detector"])
def test_every_builtin_example(name):
    from shipyard.sources.examples import example_names

    if name not in example_names():
        pytest.skip(f"example:{name} is not registered")
    result = inspect_model(f"example:{name}", measure=False)
    assert result.parameters > 0 and result.total_flops > 0 and result.layers
    assert all(op.backends.get("onnxruntime") for op in result.operators)


def test_cli_inspect_writes_json(onnx_file, tmp_path, capsys):
    from shipyard.cli.main import main

    assert (
        main(
            [
                "inspect",
                str(onnx_file),
                "--no-machine",
                "--top",
                "3",
                "--json",
                str(tmp_path / "i.json"),
            ]
        )
        == 0
    )
    assert "layers where time goes (top 3" in capsys.readouterr().out
    data = json.loads((tmp_path / "i.json").read_text())
    assert data["parameters"] > 0 and data["layers"] and data["inputs"][0]["name"] == "image"
    assert main(["inspect", str(tmp_path / "missing.onnx")]) == 2


def test_matmul_flops_do_not_need_the_weight_shape():
    """ORT leaves pre-packed constant weights out of a node's shapes; K comes from the input."""
    from shipyard.inspect.flops import node_flops

    assert node_flops("MatMul", [[1, 16, 384]], [[1, 16, 1536]]) == 2 * 16 * 1536 * 384
    assert node_flops("Gemm", [[16, 1536], [384]], [[16, 384]]) == 2 * 16 * 384 * 1536
    assert node_flops("Reshape", [[16, 384]], [[1, 16, 384]]) == 0
