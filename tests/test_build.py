import json

import numpy as np
import pytest
from conftest import assert_passed

import shipyard
from shipyard.bench import BenchConfig
from shipyard.errors import DataError, UsageError
from shipyard.pipeline.build import BuildOptions, build

pytest.importorskip("torch")
QUICK = BenchConfig(rounds=1, block_seconds=0.05, max_block=10)


def test_digits_package_keeps_the_contract(digits_package):
    manifest = json.loads((digits_package / "manifest.json").read_text())
    for key in (
        "name",
        "backend",
        "precision",
        "files",
        "inputs",
        "outputs",
        "metrics",
        "candidates",
    ):
        assert key in manifest
    assert manifest["name"] == "digits"
    assert manifest["inputs"] == [
        {
            "name": "image",
            "datatype": "FP32",
            "dtype": "float32",
            "shape": [-1, 1, 8, 8],
            "dims": ["batch", 1, 8, 8],
        }
    ]
    assert manifest["outputs"][0]["shape"] == [-1, 10]
    for file in manifest["files"]:
        assert (digits_package / file).is_file(), file
    for candidate in manifest["candidates"]:
        assert {
            "backend",
            "precision",
            "recipe",
            "passed",
            "metric",
            "value",
            "latency_ms",
            "why_failed",
        } <= set(candidate)
    assert manifest["metrics"]["metric"] == "accuracy"
    assert manifest["metrics"]["speedup_vs_baseline"] > 0
    report = (digits_package / "report.html").read_text()
    assert "<svg" in report and "baseline: torch eager" in report
    assert json.loads((digits_package / "candidates.json").read_text()) == manifest["candidates"]


def test_loaded_package_gives_the_source_answers(digits_package):
    import torch

    from shipyard.sources import load_source

    source = load_source("example:digits")
    x = source.example_data.inputs["image"][:16]
    predictor = shipyard.load(digits_package)
    with torch.no_grad():
        expected = source.module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(
        predictor.run({"image": x})["logits"], expected, rtol=1e-4, atol=1e-4
    )
    with pytest.raises(DataError, match="expected"):
        predictor.run({"image": x[:, :, :4]})


@pytest.mark.slow
def test_unseen_cnn_from_factory_keeps_accuracy(small_cnn, tmp_path):
    out = tmp_path / "pkg"
    result = build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=small_cnn["weights"],
            data=small_cnn["data"],
            max_drop=1.0,
            out=out,
            bench=QUICK,
        )
    )
    assert result.metric == "accuracy" and result.chosen is not None
    baseline_accuracy = result.baseline.verification.value
    assert baseline_accuracy > 80
    data = np.load(small_cnn["data"])
    predictor = shipyard.load(out)
    logits = predictor.run({"image": data["image"]})[predictor.signature.outputs[0].name]
    accuracy_all = (logits.argmax(1) == data["labels"]).mean() * 100
    import torch

    with torch.no_grad():
        source_all = (
            result.source.module(torch.from_numpy(data["image"])).argmax(1).numpy()
            == data["labels"]
        ).mean() * 100
    assert abs(accuracy_all - source_all) <= 1.0
    assert_passed(
        result,
        [
            "torch",
            "torchscript",
            "onnxruntime/fp32",
            "onnxruntime/fp32+onnxslim",
            "onnxruntime/fp32+ort",
            "openvino",
        ],
    )


def test_onnx_source_builds_with_its_own_baseline(digits_package, tmp_path):
    manifest = json.loads((digits_package / "manifest.json").read_text())
    onnx_file = digits_package / manifest["model_file"]
    data = tmp_path / "d.npz"
    from shipyard.sources.examples.digits import held_out

    held = held_out()
    np.savez(data, image=held.inputs["image"][:200], labels=held.labels[:200])
    result = build(
        BuildOptions.create(str(onnx_file), data=data, out=tmp_path / "pkg", bench=QUICK)
    )
    assert result.baseline.key == "baseline: source on onnxruntime"
    assert {c.backend for c in result.candidates} == {"onnxruntime", "openvino"}
    assert_passed(result, ["onnxruntime", "openvino"])
    assert result.chosen.passed and (tmp_path / "pkg" / "manifest.json").is_file()


def test_backends_restrict_the_search_and_synthetic_data_is_labelled(tmp_path, small_cnn):
    result = build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=small_cnn["weights"],
            input_hints=[shipyard.sources.InputHint("image", "float32", (3, 16, 16))],
            backends=["onnxruntime"],
            bench=QUICK,
        )
    )
    assert {c.backend for c in result.candidates} == {"onnxruntime"}
    assert_passed(result, ["onnxruntime/fp32", "onnxruntime/fp32+onnxslim", "onnxruntime/fp32+ort"])
    assert result.synthetic_data and result.metric == "agreement"
    assert any("speed and fidelity" in n for n in result.notes)


def test_existing_out_is_kept_unless_forced(tmp_path, small_cnn):
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="--force"):
        build(BuildOptions.create("example:digits", out=out, bench=QUICK))
    assert (out / "precious.txt").read_text() == "keep me"


def test_failed_build_leaves_no_half_written_package(tmp_path, small_cnn):
    out = tmp_path / "pkg"
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=np.zeros((4, 3, 8, 8), np.float32))
    with pytest.raises(DataError):
        build(
            BuildOptions.create(
                f"{small_cnn['model']}:make",
                weights=small_cnn["weights"],
                data=bad,
                out=out,
                input_hints=[shipyard.sources.InputHint("image", "float32", (3, 16, 16))],
            )
        )
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pkg")]


@pytest.mark.slow
def test_minilm_text_package_takes_text(tmp_path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from shipyard.sources.examples.minilm import model_folder

    sentences = tmp_path / "s.txt"
    sentences.write_text(
        "\n".join(
            [
                "A cargo ship left the port at dawn.",
                "Neural networks need careful deployment.",
                "The soup was too salty.",
                "Quarterly results beat expectations.",
                "My bicycle has a flat tyre.",
            ]
            * 4
        )
    )
    out = tmp_path / "pkg"
    build(
        BuildOptions.create(
            f"hf:{model_folder()}",
            data=sentences,
            backends=["onnxruntime"],
            precisions=["fp32"],
            out=out,
            bench=QUICK,
        )
    )  # FP32: the 0.999 below is the text path's, not INT8's
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == [
        {"name": "text", "datatype": "BYTES", "dtype": "bytes", "shape": [-1], "dims": ["batch"]}
    ]
    unseen = [
        "Lighthouses guide sailors through fog.",
        "The compiler rejected the program.",
        "We ate pancakes with maple syrup on Sunday morning while it rained.",
    ]
    got = shipyard.load(out).run({"text": np.array([s.encode() for s in unseen], dtype=object)})[
        "sentence_embedding"
    ]
    expected = sentence_transformers.SentenceTransformer(str(model_folder()), device="cpu").encode(
        unseen
    )
    cosine = (
        (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 0.999


def test_a_broken_export_is_caught_by_verification(small_cnn, monkeypatch):
    """The torch candidate runs the torch.export file the package would ship, not the module in
    memory."""
    import dataclasses

    import torch

    from shipyard.convert import torch_program

    class Negated(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, image):
            return -self.model(image)

    export = torch_program.export_program

    def export_a_broken_model(source, path):
        return export(dataclasses.replace(source, module=Negated(source.module)), path)

    monkeypatch.setattr(torch_program, "export_program", export_a_broken_model)
    result = build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=small_cnn["weights"],
            data=small_cnn["data"],
            backends=["torch", "onnxruntime"],
            metric="cosine",
            bench=QUICK,
        )
    )
    (torch_candidate,) = [c for c in result.candidates if c.key == "torch/fp32"]
    assert not torch_candidate.passed and torch_candidate.verification is not None
    assert_passed(result, ["onnxruntime/fp32"])
    assert result.chosen.backend == "onnxruntime"
