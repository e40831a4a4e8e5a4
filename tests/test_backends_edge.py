"""ncnn, MNN and TVM end to end on a small CNN the tool never saw: convert, load, run, verify,
package."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shipyard.bench import BenchConfig
from shipyard.errors import ConversionError

EDGE = ("ncnn", "mnn", "tvm")
pytestmark = [pytest.mark.backend(name) for name in EDGE]


@pytest.fixture(scope="module")
def edge_build(small_cnn, tmp_path_factory):
    """``shipyard build … --backends torchscript,ncnn,mnn,tvm,onnxruntime --precisions fp32``,
    parsed by the
    CLI's own parser; only the timing is shortened (the CLI has no option for that)."""
    from shipyard.cli.build_verbs import build_options
    from shipyard.cli.main import make_parser
    from shipyard.pipeline.build import build

    out = tmp_path_factory.mktemp("edge") / "pkg"
    args = make_parser().parse_args(
        [
            "build",
            f"{small_cnn['model']}:make",
            "--weights",
            str(small_cnn["weights"]),
            "--data",
            str(small_cnn["data"]),
            "--backends",
            "torchscript,ncnn,mnn,tvm,onnxruntime",
            "--precisions",
            "fp32",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    options = build_options(args)
    options = options.replace(bench=BenchConfig(rounds=1, block_seconds=0.05))
    assert build(options).package == out.resolve()
    return out


@pytest.mark.slow
def test_every_edge_backend_is_a_passing_candidate(edge_build):
    candidates = json.loads((edge_build / "candidates.json").read_text())
    by_backend: dict[str, list[dict]] = {}
    for candidate in candidates:
        by_backend.setdefault(candidate["backend"], []).append(candidate)
    assert set(by_backend) == {"torchscript", "ncnn", "mnn", "tvm", "onnxruntime"}
    for backend, entries in by_backend.items():
        assert all(c["passed"] for c in entries), (backend, [c["why_failed"] for c in entries])
        for candidate in entries:
            worst = max(o["max_abs"] for o in candidate["verification"]["outputs"])
            assert worst < 1e-3, (backend, worst)  # agrees with the original, not just accuracy
            assert candidate["latency_ms"] > 0


def _package_with(backend: str, small_cnn, folder):
    from shipyard.pipeline.build import BuildOptions, build

    build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=small_cnn["weights"],
            data=small_cnn["data"],
            backends=[backend],
            precisions=["fp32"],  # compared with the source to 1e-4
            out=folder,
            threads=1,
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    )
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("backend", [*EDGE, "torchscript"])
def test_an_edge_package_loads_and_matches_the_source(backend, small_cnn, tmp_path):
    import torch

    import shipyard

    folder = _package_with(backend, small_cnn, tmp_path / backend)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["backend"] == backend
    assert all((folder / f).is_file() for f in manifest["files"])
    if backend == "ncnn":
        assert {"model/model.param", "model/model.bin"} <= set(manifest["files"])
    if backend == "torchscript":  # libtorch formats say how to load them from C++ without Python
        assert "torch::jit::load" in manifest["cpp_loading"]
    else:
        assert manifest["cpp_loading"] is None
    images = np.load(small_cnn["data"])["image"][:5]
    namespace: dict = {}
    exec(compile(small_cnn["model"].read_text(), "model.py", "exec"), namespace)
    model = namespace["make"]().eval()
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(small_cnn["weights"])))
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    assert bool(manifest["carries_code"]) == (backend == "tvm")  # a compiled library needs consent
    predictor = shipyard.load(folder, trust_code=backend == "tvm")
    got = predictor.run({"image": images})
    (name,) = got
    np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-4)
    assert predictor.run({"image": images[:1]})[name].shape == (1, 4)  # any batch size
    predictor.close()


def test_conversion_errors_say_what_was_wrong(tmp_path):
    from shipyard.backends.mnn.convert import convert_to_mnn
    from shipyard.backends.steps import convert_step
    from shipyard.records import Artifact, Signature, TensorSpec

    signature = Signature(
        (TensorSpec("x", "float32", ("batch", 4)),), (TensorSpec("y", "float32", ("batch", 4)),)
    )
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx model")
    with pytest.raises(ConversionError, match="MNN converter could not convert broken.onnx"):
        convert_to_mnn(Artifact(broken, "onnx", signature), tmp_path / "out.mnn")
    with pytest.raises(
        ConversionError,
        match="converting to ncnn needs a torchscript artifact; the recipe gave it onnx",
    ):
        convert_step(None, Artifact(broken, "onnx", signature), "ncnn")
    with pytest.raises(ConversionError, match="unknown conversion target 'coreml'"):
        convert_step(None, None, "coreml")


def test_ncnn_takes_float_inputs_of_torch_models_only():
    from shipyard.backends import get_backend
    from shipyard.backends.ncnn.convert import shape_argument
    from shipyard.records import TensorSpec

    image = TensorSpec("image", "float32", ("batch", 3, 16, 16))
    assert shape_argument((image,), None) == "[2,3,16,16]f32"
    assert (
        shape_argument((image, TensorSpec("mask", "float32", ("batch", 8))), 1)
        == "[1,3,16,16]f32,[1,8]f32"
    )
    with pytest.raises(ConversionError, match="ncnn takes float inputs; input 'ids' is int64"):
        shape_argument((TensorSpec("ids", "int64", ("batch", "sequence")),), None)

    class FakeSource:
        kind, text = "onnx", None

    assert get_backend("ncnn").plans(FakeSource(), "fp32") == []
    assert [str(c.recipe) for c in get_backend("mnn").plans(FakeSource(), "fp32")] == [
        "export(format=onnx) → convert(format=mnn)"
    ]


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_mnn_compressed_weights_stay_close_to_the_source(small_cnn, tmp_path, precision):
    import torch

    from shipyard.backends import get_backend
    from shipyard.inputs import hints_from_npz
    from shipyard.sources import load_source
    from shipyard.workshop import Workshop

    source = load_source(
        f"{small_cnn['model']}:make", small_cnn["weights"], hints_from_npz(small_cnn["data"]), None
    )
    (plan,) = get_backend("mnn").plans(source, precision)
    artifact = Workshop(source, tmp_path).make(plan.recipe)
    plain = Workshop(source, tmp_path / "fp32").make(target_fp32_recipe(source, "mnn"))
    assert artifact.size_bytes() < plain.size_bytes()  # the weights really shrank
    images = np.load(small_cnn["data"])["image"][:50]
    with torch.no_grad():
        expected = source.module(torch.from_numpy(images)).numpy()
    (name,) = source.signature.output_names
    got = get_backend("mnn").load(artifact, threads=1).run({"image": images})[name]
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.95
    assert np.abs(got - expected).max() < (0.05 if precision == "fp16" else 0.5)


def target_fp32_recipe(source, backend):
    from shipyard.backends import get_backend

    return get_backend(backend).plans(source, "fp32")[0].recipe
