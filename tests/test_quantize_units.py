"""Fast checks of the quantisation pieces: planning, calibration notes, errors, keep sets, cache."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.dataset import Dataset
from shipyard.pipeline.plan import plan_candidates
from shipyard.quantize.calibration import MIN_SAMPLES, calibration_set
from shipyard.quantize.layerwise import DQ_SUFFIX, Graph, LayerError, rank_layers, tensor_error
from shipyard.records import Artifact, Signature, TensorSpec


def _images(count: int, mean: float = 0.0, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset({"image": rng.normal(mean, 1.0, size=(count, 3, 8, 8)).astype(np.float32)})


def test_calibration_subset_is_capped_and_seeded():
    chosen = calibration_set(_images(500), _images(100, seed=1), size=300)
    again = calibration_set(_images(500), _images(100, seed=1), size=300)
    assert len(chosen.dataset) == 300
    np.testing.assert_array_equal(chosen.dataset.inputs["image"], again.dataset.inputs["image"])
    assert chosen.notes == []


def test_calibration_warns_when_too_small_or_unlike_the_evaluation_data():
    small = calibration_set(_images(MIN_SAMPLES - 1), _images(100, seed=1), size=300)
    assert any("only" in n and str(MIN_SAMPLES - 1) in n for n in small.notes)
    shifted = calibration_set(_images(100, mean=3.0), _images(100, seed=1), size=300)
    assert any("unlike the evaluation data" in n and "'image'" in n for n in shifted.notes)


def test_tensor_error_sees_channels_a_huge_channel_would_hide():
    reference = np.ones((2, 4, 3, 3), np.float32)
    reference[:, 0] = 1000.0
    wiped = reference.copy()
    wiped[:, 1:] = 0.0  # every small channel lost, the huge one intact
    error, cosine = tensor_error(reference, wiped)
    assert cosine > 0.999  # a whole-tensor measure would call this fine
    assert error == pytest.approx(0.75)  # 3 of 4 channels entirely wrong
    assert tensor_error(reference, reference) == (0.0, pytest.approx(1.0))


def _qdq_graph(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="first"),
        helper.make_node("QuantizeLinear", ["a", "s", "z"], ["a_q"], name="q"),
        helper.make_node("DequantizeLinear", ["a_q", "s", "z"], ["a" + DQ_SUFFIX], name="dq"),
        helper.make_node("Relu", ["a" + DQ_SUFFIX], ["b"], name="second"),
        helper.make_node("Neg", ["a" + DQ_SUFFIX], ["c"], name="third"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
        [
            helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
            helper.make_tensor("z", TensorProto.UINT8, [], [0]),
        ],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return Graph.of(path)


def test_graph_sees_through_qdq_and_keep_set_covers_producer_and_consumers(tmp_path):
    from shipyard.search.rescue import keep_set

    graph = _qdq_graph(tmp_path)
    assert graph.producer["a"] == ("first", "Relu")
    assert sorted(graph.consumers["a"]) == ["second", "third"]
    layer = LayerError("a", "first", "Relu", 0.9, 0.9, 0.5)
    assert keep_set([layer], graph) == {"first", "second", "third"}


def test_rank_layers_blames_the_layer_that_adds_the_error(tmp_path):
    graph = _qdq_graph(tmp_path)
    x = np.ones((2, 3), np.float32)
    reference = {"a": x, "b": x * 2, "c": -x}
    quantized = {"a" + DQ_SUFFIX: x * 1.5, "b": x * 3, "c": -x * 1.5}
    ranked = rank_layers(graph, reference, quantized)
    assert ranked[0].node == "first" and ranked[0].introduced == pytest.approx(0.5)
    assert all(r.introduced == pytest.approx(0.0) for r in ranked[1:])


def test_int8_and_fp16_plans_per_backend(small_cnn):
    from shipyard.inputs import hints_from_npz
    from shipyard.sources import load_source

    source = load_source(
        f"{small_cnn['model']}:make", small_cnn["weights"], hints_from_npz(small_cnn["data"])
    )
    plans, _ = plan_candidates(source, ["onnxruntime", "openvino", "torch"], ["int8", "fp16"])
    keys = {c.key for c in plans}
    assert (
        "onnxruntime/int8+quantize(method=static-qdq, calibration=minmax, per_channel=True, "
        "moving_average=True)" in keys
    )
    assert "openvino/int8+quantize(method=nncf, transformer=False)" in keys
    assert {"onnxruntime/fp16+quantize(method=fp16)", "openvino/fp16"} <= keys
    assert not any(c.backend == "torch" for c in plans)


def test_cache_returns_the_stored_artifact_without_making_it_again(tmp_path, monkeypatch):
    from shipyard.quantize.cache import cache_key, cached

    monkeypatch.setenv("SHIPYARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SHIPYARD_NO_CACHE", raising=False)
    signature = Signature(
        (TensorSpec("x", "float32", ("batch", 2)),), (TensorSpec("y", "float32", ("batch", 2)),)
    )
    made = []

    def make(path):
        made.append(path)
        path.write_bytes(b"model")
        return Artifact(path, "tflite", signature)

    key = cache_key("source", "recipe", "data")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = cached(key, tmp_path / "a" / "model.bin", make)
    second = cached(key, tmp_path / "b" / "model.bin", make)
    assert len(made) == 1
    assert second.path == tmp_path / "b" / "model.bin" and second.path.read_bytes() == b"model"
    assert second.signature == first.signature and second.format == "tflite"
    assert cache_key("source", "recipe", "other data") != key


def test_cache_key_changes_with_the_quantiser_code(monkeypatch):
    """An artifact an older quantiser made must not be served after the quantiser changed."""
    from shipyard.quantize import cache

    before = cache.cache_key("source", "recipe", "data")
    assert len(cache.code_version()) == 16  # a digest of the real files
    monkeypatch.setattr(cache, "code_version", lambda: "another version of the code")
    assert cache.cache_key("source", "recipe", "data") != before


def test_keep_set_without_quantised_activations_blames_the_matmul_above(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from shipyard.search.rescue import keep_set

    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
        helper.make_node("Reshape", ["m", "shape"], ["r"], name="view"),
        helper.make_node("Relu", ["r"], ["y"], name="act"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1, 0, 0, 1]),
            helper.make_tensor("shape", TensorProto.INT64, [1], [2]),
        ],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    layer = LayerError("r", "view", "Reshape", 0.5, 0.5, 0.9)
    assert keep_set([layer], Graph.of(path), activations=False) == {"mm"}
    assert keep_set([layer], Graph.of(path), activations=True) == {"view", "act"}
