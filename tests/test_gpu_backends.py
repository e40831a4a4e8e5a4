"""TensorRT and ONNX Runtime's CUDA/TensorRT providers. The GPU tests skip cleanly without an
NVIDIA GPU;
the planning and option code around them is checked everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.records import Artifact, Signature, TensorSpec

IMAGE = Signature(
    (TensorSpec("image", "float32", ("batch", 1, 8, 8)),),
    (TensorSpec("logits", "float32", ("batch", 10)),),
)


def test_engine_profiles_cover_the_dynamic_axes_only():
    from shipyard.backends.tensorrt.convert import EngineOptions, profile_shapes

    text = Signature((TensorSpec("ids", "int64", ("batch", "sequence")),), IMAGE.outputs)
    assert profile_shapes(IMAGE, EngineOptions()) == {
        "image": ((1, 1, 8, 8), (8, 1, 8, 8), (64, 1, 8, 8))
    }
    assert profile_shapes(text, EngineOptions(max_batch=16))["ids"] == ((1, 1), (8, 128), (16, 512))


def test_tensorrt_provider_falls_back_to_cuda_then_cpu(tmp_path):
    from shipyard.backends.onnxruntime_cuda.session import CUDA, TENSORRT, provider_options

    artifact = Artifact(tmp_path / "model.onnx", "onnx", IMAGE)
    providers = provider_options(TENSORRT, artifact, fp16=True)
    assert [p if isinstance(p, str) else p[0] for p in providers] == [
        TENSORRT,
        CUDA,
        "CPUExecutionProvider",
    ]
    assert providers[0][1]["trt_fp16_enable"] is True
    assert providers[0][1]["trt_engine_cache_path"] == str(tmp_path / "trt-cache")


def test_qdq_models_need_no_calibrator(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from shipyard.backends.tensorrt.convert import has_qdq_nodes

    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.1])
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [scale],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "qdq.onnx"))
    plain = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(plain), str(tmp_path / "plain.onnx"))
    assert has_qdq_nodes(tmp_path / "qdq.onnx") and not has_qdq_nodes(tmp_path / "plain.onnx")


def test_gpu_backends_plan_from_onnx():
    from shipyard.backends import get_backend

    class Source:
        kind, text = "torch", None

    assert [str(c.recipe) for c in get_backend("tensorrt").plans(Source(), "fp32")] == [
        "export(format=onnx) → convert(format=tensorrt, precision=fp32)"
    ]
    assert [c.key for c in get_backend("onnxruntime-cuda").plans(Source(), "fp32")] == [
        "onnxruntime-cuda/fp32"
    ]


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory):
    from shipyard.records import Recipe
    from shipyard.sources import load_source
    from shipyard.workshop import Workshop

    source = load_source("example:digits")
    artifact = Workshop(source, tmp_path_factory.mktemp("gpu")).make(
        Recipe().then("export", format="onnx")
    )
    return source, artifact


def _expected(source, x):
    import torch

    with torch.no_grad():
        return source.module(torch.from_numpy(x)).numpy()


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["onnxruntime-cuda", "onnxruntime-trt"])
def test_onnxruntime_gpu_providers_match_the_source(digits_onnx, name):
    from shipyard.backends import get_backend

    source, artifact = digits_onnx
    ok, why = get_backend(name).available()
    if not ok:
        pytest.skip(why)
    x = source.example_data.inputs["image"][:8]
    got = get_backend(name).load(artifact, threads=1).run({"image": x})["logits"]
    np.testing.assert_allclose(got, _expected(source, x), rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.backend("tensorrt")
@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-3), ("fp16", 5e-2)])
def test_tensorrt_engine_matches_the_source(digits_onnx, tmp_path, precision, tolerance):
    from shipyard.backends import get_backend
    from shipyard.backends.tensorrt.convert import EngineOptions, build_engine

    source, onnx = digits_onnx
    engine = build_engine(
        onnx, tmp_path / "model.engine", EngineOptions(precision=precision, max_batch=16)
    )
    assert engine.path.with_suffix(".timing-cache").is_file()
    x = source.example_data.inputs["image"][:8]
    got = get_backend("tensorrt").load(engine, threads=1).run({"image": x})["logits"]
    np.testing.assert_allclose(got, _expected(source, x), rtol=tolerance, atol=tolerance)


@pytest.mark.gpu
@pytest.mark.backend("tensorrt")
def test_tensorrt_int8_engine_keeps_the_top_class(digits_onnx, tmp_path):
    from shipyard.backends import get_backend
    from shipyard.backends.tensorrt.convert import EngineOptions, build_engine

    source, onnx = digits_onnx
    engine = build_engine(
        onnx,
        tmp_path / "model.engine",
        EngineOptions(precision="int8", max_batch=16),
        calibration=source.example_data,
    )
    x = source.example_data.inputs["image"][:64]
    got = get_backend("tensorrt").load(engine, threads=1).run({"image": x})["logits"]
    assert (got.argmax(1) == _expected(source, x).argmax(1)).mean() > 0.95
