"""A model with a custom op no ONNX exporter knows: found (op and module path), cut into parts,
run split (ONNX Runtime around PyTorch) to the original's outputs, built and packaged."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.backend("onnxruntime")

from custom_op_model import OP_NAME, make_model  # noqa: E402

from shipyard.records import Artifact, Signature, TensorSpec  # noqa: E402

SIGNATURE = Signature(
    (TensorSpec("image", "float32", ("batch", 3, 16, 16)),),
    (TensorSpec("output", "float32", ("batch", 10)),),
)


@pytest.fixture(scope="module")
def model():
    return make_model(width=8, depth=2)


@pytest.fixture(scope="module")
def split_artifact(model, tmp_path_factory):
    from shipyard.convert.custom_ops import find_unknown_ops
    from shipyard.split.artifact import write_split
    from shipyard.split.partition import partition

    args = (torch.randn(2, 3, 16, 16),)
    path = tmp_path_factory.mktemp("split") / "model.split.zip"
    plan = write_split(
        partition(model, args, ["image"]), find_unknown_ops(model, args), path, "onnxruntime"
    )
    return Artifact(path, "split", SIGNATURE), plan


def test_the_op_and_where_it_is_called():
    from shipyard.convert.custom_ops import find_unknown_ops

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = make_model(width=8, depth=1)

        def forward(self, image):
            return self.inner(image)

    ops = find_unknown_ops(Wrapper().eval(), (torch.randn(1, 3, 16, 16),))
    assert [(op.name, op.module_paths, op.calls) for op in ops] == [(OP_NAME, ["inner"], 1)]
    assert ops[0].runs_on == ["torch"] and "unknown to both ONNX exporters" in ops[0].describe()
    assert find_unknown_ops(torch.nn.Linear(3, 2), (torch.randn(1, 3),)) == []


def test_plan_has_onnx_parts_around_a_torch_part(split_artifact):
    _, plan = split_artifact
    assert [s["kind"] for s in plan["steps"]] == ["onnx", "torch", "onnx"]
    assert plan["steps"][1]["ops"] == [OP_NAME]
    assert plan["steps"][0]["module_paths"][0].startswith("stem")
    assert plan["ops"][0]["file"] == "ops/custom_op_model.py"


@pytest.mark.parametrize("batch", [1, 5])
def test_split_session_matches_the_original(model, split_artifact, batch):
    from shipyard.backends import get_backend

    artifact, _ = split_artifact
    session = get_backend("split").load(artifact, threads=1)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run({"image": x})["output"], expected, atol=1e-4, rtol=0)


def test_a_fresh_process_registers_the_op_from_the_artifact(model, split_artifact, tmp_path):
    """No import of the model's code: the op's source file travels inside the artifact."""
    artifact, _ = split_artifact
    x = np.random.default_rng(7).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import json, sys, numpy as np
        from pathlib import Path
        from shipyard.backends import get_backend
        from shipyard.records import Artifact, Signature
        signature = Signature.from_json(json.loads(sys.argv[1]))
        artifact = Artifact(Path({str(artifact.path)!r}), "split", signature)
        session = get_backend("split").load(artifact, 1)
        assert "custom_op_model" not in sys.modules
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r}, session.run({{"image": x}})["output"])
    """)
    subprocess.run(
        [sys.executable, "-c", script, json.dumps(SIGNATURE.to_json())], check=True, timeout=120
    )
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-4, rtol=0)


def test_models_without_unknown_ops_plan_no_split():
    from shipyard.sources.base import Source
    from shipyard.split.plan import split_plans

    linear = Source(
        "linear",
        "torch",
        Signature(
            (TensorSpec("x", "float32", ("batch", 3)),), (TensorSpec("y", "float32", ("batch", 2)),)
        ),
        "h",
        module=torch.nn.Linear(3, 2).eval(),
    )
    assert split_plans(linear) == []


def test_a_translation_table_on_the_model_marks_the_op_translated():
    from shipyard.convert.custom_ops import TRANSLATION_ATTRIBUTE, find_unknown_ops

    translated = make_model(width=8, depth=1)
    setattr(
        translated,
        TRANSLATION_ATTRIBUTE,
        {torch.ops.shipyard_demo.channel_gate.default: lambda x, alpha: x},
    )
    (op,) = find_unknown_ops(translated, (torch.randn(1, 3, 16, 16),))
    assert op.translated and op.runs_on == ["torch", "onnxruntime", "openvino"]


def test_a_registered_translation_exports_whole_instead_of_splitting(tmp_path):
    from custom_op_model import make_translated_model

    from shipyard.backends import get_backend
    from shipyard.convert.onnx_export import export_onnx
    from shipyard.sources.base import Source
    from shipyard.split.plan import split_plans

    model = make_translated_model(width=8, depth=1)
    source = Source("translated", "torch", SIGNATURE, "t", module=model)
    assert split_plans(source) == []
    exported = export_onnx(source, tmp_path / "whole.onnx")
    session = get_backend("onnxruntime").load(exported.artifact, 1)
    x = np.random.default_rng(3).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run({"image": x})["output"], expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_build_packages_the_split_and_names_op_and_parts(tmp_path):
    import custom_op_model as demo

    import shipyard
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build
    from shipyard.sources import InputHint

    options = BuildOptions.create(
        f"{demo.__file__}:make_model",
        input_hints=[InputHint("image", "float32", (3, 16, 16))],
        backends=["onnxruntime", "split"],
        out=tmp_path / "package",
        threads=1,
        max_eval=32,
        bench=BenchConfig(rounds=1, block_seconds=0.05),
    )
    result = build(options)
    split = next(c for c in result.candidates if c.backend == "split")
    assert split.passed, split.why_failed
    assert OP_NAME in str(split.recipe) and "onnxruntime(stem" in str(split.recipe)
    assert any(n.startswith("split into 3 parts") for n in result.notes)
    assert result.chosen is split  # the ONNX candidates cannot export the op, and say which
    onnx = next(c for c in result.candidates if c.backend == "onnxruntime")
    assert OP_NAME in onnx.why_failed and "split candidate" in onnx.why_failed
    manifest = json.loads((result.package / "manifest.json").read_text())
    assert manifest["backend"] == "split" and manifest["model_file"].endswith(".split.zip")
    assert (
        manifest["carries_code"][0]["kind"] == "python"
    )  # the op's Python is imported at load: consent first
    with pytest.raises(shipyard.PackageError, match="trust_code=True"):
        shipyard.load(result.package)
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        expected = make_model()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(
        shipyard.load(result.package, trust_code=True).run({"image": x})["output"],
        expected,
        atol=1e-4,
        rtol=0,
    )
