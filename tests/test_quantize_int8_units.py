"""Fast checks of the INT8 pieces added for real models: unsigned QDQ rewrite, equal calibration
feeds, reverting layers in a QDQ graph, QAT's guards against ending below PTQ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipyard.records import Candidate, Recipe, Verification


def _qdq_conv_model(zero_dtype: str = "int8"):
    """x → Q/DQ (signed, symmetric) → Conv(int8 weights via DQ) → Q/DQ → y: a QDQ model in
    miniature."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    zero = np.zeros((), np.int8)
    inits = [
        numpy_helper.from_array(weight, "w_q"),
        numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_s"),
        numpy_helper.from_array(np.zeros(4, np.int8), "w_z"),
        numpy_helper.from_array(np.array(0.02, np.float32), "x_s"),
        numpy_helper.from_array(zero, "x_z"),
        numpy_helper.from_array(np.array(0.05, np.float32), "y_s"),
        numpy_helper.from_array(zero.copy(), "y_z"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"], name="qx"),
        helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_dq"], name="dqx"),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], name="dqw", axis=0),
        helper.make_node("Conv", ["x_dq", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "y_s", "y_z"], ["c_q"], name="qy"),
        helper.make_node("DequantizeLinear", ["c_q", "y_s", "y_z"], ["y"], name="dqy"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
        value_info=[helper.make_tensor_value_info("x_q", TensorProto.INT8, [1, 3, 8, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]


@pytest.mark.backend("onnxruntime")
def test_unsigned_activations_keep_every_value_and_leave_weights_signed():
    import onnx

    from shipyard.backends.onnxruntime.nncf_int8 import unsigned_activations

    model = _qdq_conv_model()
    x = np.random.default_rng(1).normal(0, 1, size=(1, 3, 8, 8)).astype(np.float32)
    before = _run(model, x)
    assert unsigned_activations(model) == 2  # x and y, once each although Q and DQ share them
    zeros = {i.name: i for i in model.graph.initializer}
    assert (
        zeros["x_z"].data_type == onnx.TensorProto.UINT8
        and zeros["y_z"].data_type == onnx.TensorProto.UINT8
    )
    assert (
        zeros["w_z"].data_type == onnx.TensorProto.INT8
    )  # weights stay S8: U8S8 is the fast x86 path
    np.testing.assert_array_equal(_run(model, x), before)  # the same grid of values, shifted by 128


@pytest.mark.backend("onnxruntime")
def test_reverting_a_layer_computes_it_in_float_but_keeps_the_folded_clip():
    from shipyard.search.qdq_revert import quantized_layers, revert

    model = _qdq_conv_model()
    assert [l.name for l in quantized_layers(model)] == ["conv"]
    x = (
        np.random.default_rng(2).normal(0, 3, size=(1, 3, 8, 8)).astype(np.float32)
    )  # beyond x's range ±2.54
    float_model = revert(model, {"conv"})
    assert not any(n.name in ("qx", "dqx", "dqw") for n in float_model.graph.node)
    import onnx

    onnx.checker.check_model(float_model)
    reverted = _run(float_model, x)
    # by hand: input clipped to what its quantiser represents (a folded ReLU/Clip lives there),
    # float weights
    import torch

    weight = torch.from_numpy(
        np.random.default_rng(0).integers(-127, 128, size=(4, 3, 3, 3)).astype(np.float32) * 0.01
    )
    clipped = torch.from_numpy(x).clamp(-128 * 0.02, 127 * 0.02)
    expected = torch.nn.functional.conv2d(clipped, weight, padding=1).numpy()
    expected = (
        np.clip(np.round(expected / 0.05), -128, 127) * 0.05
    )  # the output quantiser belongs to the next layer
    np.testing.assert_allclose(reverted, expected, atol=0.051)
    assert np.abs(reverted - _run(model, x)).max() > 0  # the input rounding really is gone


@pytest.mark.backend("onnxruntime")
def test_a_reverted_layer_takes_the_float_weights_only_when_they_are_the_same_tensor():
    from shipyard.search.qdq_revert import revert

    model = _qdq_conv_model()
    x = np.random.default_rng(3).normal(0, 1, size=(1, 3, 8, 8)).astype(np.float32)
    steps = np.random.default_rng(0).integers(-127, 128, size=(4, 3, 3, 3)).astype(np.float32)
    dequantized = _run(revert(model, {"conv"}), x)
    near = steps * 0.01 + 0.004  # within half a step (0.005) of every dequantised weight
    assert not np.array_equal(_run(revert(model, {"conv"}, {"w_q": near}), x), dequantized)
    other = steps * 0.01 + 0.02  # the same name and shape, another tensor: not used
    np.testing.assert_array_equal(_run(revert(model, {"conv"}, {"w_q": other}), x), dequantized)


@pytest.mark.backend("onnxruntime")
def test_entropy_and_percentile_calibrate_when_the_count_is_not_a_multiple_of_eight(
    small_cnn, tmp_path
):
    from shipyard.backends.base import ONNX
    from shipyard.backends.onnxruntime.int8 import even_batch, quantize_static_qdq
    from shipyard.dataset import load_npz
    from shipyard.inputs import hints_from_npz
    from shipyard.sources import load_source
    from shipyard.workshop import Workshop

    assert [even_batch(n) for n in (300, 13, 12, 7, 1)] == [6, 1, 6, 7, 1]
    source = load_source(
        f"{small_cnn['model']}:make", small_cnn["weights"], hints_from_npz(small_cnn["data"]), None
    )
    data = load_npz(small_cnn["data"], source.signature)
    onnx_model = Workshop(source, tmp_path / "work").make(ONNX)
    calibration = data.take(np.arange(37))  # 4 feeds of 8 and one of 5 crashed ORT
    for method in ("entropy", "percentile"):
        artifact = quantize_static_qdq(onnx_model, tmp_path / f"{method}.onnx", calibration, method)
        assert artifact.path.is_file()


def _candidate(precision: str, value: float, metric: str = "agreement") -> Candidate:
    candidate = Candidate(
        "onnxruntime", precision, Recipe().then("qat" if precision == "qat" else "export")
    )
    candidate.verification = Verification(metric, value, 100.0, 100.0 - value, True, 100)
    return candidate


def test_qat_below_ptq_is_dropped_with_a_note_and_one_above_is_kept():
    from shipyard.optimize.qat import drop_below_ptq

    ptq = [_candidate("int8", 86.0), _candidate("int8", 75.0)]
    worse, better = _candidate("qat", 80.0), _candidate("qat", 88.0)
    notes = drop_below_ptq([worse, better], ptq)
    assert (
        not worse.passed
        and "below post-training INT8" in worse.why_failed
        and "86.00" in worse.why_failed
    )
    assert better.passed and len(notes) == 1 and worse.key in notes[0]


@pytest.mark.backend("torch")
def test_training_that_only_hurts_keeps_the_starting_weights():
    import torch

    from shipyard.dataset import Dataset
    from shipyard.optimize.train import TrainConfig, fit

    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Linear(8, 4)).eval()
    student = torch.nn.Sequential(torch.nn.Linear(8, 4))
    student.load_state_dict(teacher.state_dict())  # starts perfect: agreement 100 %
    start = {k: v.clone() for k, v in student.state_dict().items()}
    data = Dataset({"x": np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)})
    result = fit(
        student,
        data,
        TrainConfig(epochs=2, lr=50.0, weight_decay=0.0),
        teacher=teacher,
        keep_start=True,
    )
    assert result.kept_start and result.initial_score == result.best_score
    for name, value in student.state_dict().items():
        torch.testing.assert_close(value, start[name])


def test_preprocessing_never_writes_into_the_working_directory(tmp_path, monkeypatch):
    """ONNX Runtime's symbolic shape inference saves ``sym_shape_infer_temp.onnx`` (and its
    weights) into the working directory when it fails; the build runs it inside its scratch
    folder, so the user's folder stays clean and relative paths still resolve."""
    import onnxruntime.quantization.shape_inference as ort_shapes

    from shipyard.backends.onnxruntime.int8 import preprocess

    def failing_like_ort(model, target, skip_symbolic_shape=False, **_):
        assert Path(model).is_file()  # the model path still resolves from elsewhere
        if not skip_symbolic_shape:
            Path("sym_shape_infer_temp.onnx").write_bytes(b"dump")
            raise RuntimeError("Incomplete symbolic shape inference")
        Path(target).write_bytes(Path(model).read_bytes())

    monkeypatch.setattr(ort_shapes, "quant_pre_process", failing_like_ort)
    user = tmp_path / "user"
    user.mkdir()
    (user / "m.onnx").write_bytes(b"model")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.chdir(user)
    prepared = preprocess(Path("m.onnx"), scratch)
    assert sorted(p.name for p in user.iterdir()) == ["m.onnx"] and Path.cwd() == user
    assert prepared.read_bytes() == b"model"
