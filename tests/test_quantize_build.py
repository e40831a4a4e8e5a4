"""INT8 builds end to end on a CNN the tool never saw, and the mixed-precision rescue of a model
made hostile to INT8 on purpose (one channel with a range 1000× the others)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import shipyard
from shipyard.bench import BenchConfig

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend("onnxruntime"),
    pytest.mark.usefixtures("no_artifact_cache"),
]
FAST = BenchConfig(rounds=1, block_seconds=0.05)


def _accuracy(predictor, data) -> float:
    with np.load(data) as archive:
        logits = predictor.run({"image": archive["image"]})
        return float((next(iter(logits.values())).argmax(1) == archive["labels"]).mean() * 100)


def _torch_accuracy(small_cnn, weights) -> float:
    import torch
    from safetensors.torch import load_file

    namespace: dict = {}
    exec(small_cnn["model"].read_text(), namespace)
    model = namespace["make"]()
    model.load_state_dict(load_file(str(weights)))
    model.eval()
    with np.load(small_cnn["data"]) as archive, torch.no_grad():
        logits = model(torch.from_numpy(archive["image"])).numpy()
        return float((logits.argmax(1) == archive["labels"]).mean() * 100)


def test_unseen_cnn_builds_int8_within_one_point(small_cnn, tmp_path):
    from shipyard.pipeline.build import BuildOptions, build

    out = tmp_path / "pkg"
    result = build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=small_cnn["weights"],
            data=small_cnn["data"],
            max_drop=1.0,
            backends=["onnxruntime"],
            precisions=["int8"],
            out=out,
            bench=FAST,
        )
    )
    assert result.chosen is not None and result.chosen.precision in ("int8", "mixed")
    assert result.chosen.verification.drop <= 1.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["precision"] in ("int8", "mixed")
        and manifest["metrics"]["speedup_vs_baseline"] > 0
    )
    import onnx

    graph = onnx.load(str(out / manifest["model_file"])).graph
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)  # the package really is INT8
    predictor = shipyard.load(out)
    assert (
        abs(
            _accuracy(predictor, small_cnn["data"])
            - _torch_accuracy(small_cnn, small_cnn["weights"])
        )
        <= 1.0
    )


def test_hostile_model_is_rescued_by_keeping_a_few_layers_fp32(
    small_cnn, hostile_weights, tmp_path
):
    from shipyard.cli.main import main

    out = tmp_path / "hostile"
    code = main(
        [
            "build",
            f"{small_cnn['model']}:make",
            "--weights",
            str(hostile_weights),
            "--data",
            str(small_cnn["data"]),
            "--max-drop",
            "1",
            "--precisions",
            "int8",
            "--backends",
            "onnxruntime",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "mixed"
    kept = manifest["recipe"][-1]["keep_fp32"]
    assert 1 <= len(kept) <= 4
    plain = [c for c in manifest["candidates"] if c["precision"] == "int8"]
    assert plain and not plain[0]["passed"] and "points below" in plain[0]["why_failed"]
    assert all(c["latency_ms"] for c in manifest["candidates"] if c["precision"] == "mixed")
    named = [n for n in manifest["notes"] if "FP32" in n]
    assert named and all(layer in named[0] for layer in kept)
    assert all(layer in (out / "report.html").read_text() for layer in kept)
    predictor = shipyard.load(out)
    assert (
        abs(_accuracy(predictor, small_cnn["data"]) - _torch_accuracy(small_cnn, hostile_weights))
        <= 1.0
    )


@pytest.fixture(scope="module")
def ort_report(small_cnn, hostile_weights):
    from shipyard.search.debug_precision import debug_precision

    return debug_precision(
        f"{small_cnn['model']}:make", small_cnn["data"], hostile_weights, samples=8
    )


def test_debug_precision_names_the_hostile_layer_first(
    small_cnn, hostile_weights, ort_report, capsys
):
    from shipyard.cli.main import main

    worst = ort_report.layers[0]
    assert (
        worst.op_type == "Conv" and worst.introduced > 0.5
    )  # most channels of its output are lost
    assert worst.introduced > 4 * ort_report.layers[1].introduced
    code = main(
        [
            "debug-precision",
            f"{small_cnn['model']}:make",
            "--weights",
            str(hostile_weights),
            "--data",
            str(small_cnn["data"]),
            "--samples",
            "8",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert worst.node in printed and printed.index(worst.node) < printed.index(
        ort_report.layers[1].node
    )


@pytest.mark.backend("openvino")
@pytest.mark.backend("nncf")
def test_debug_precision_on_openvino_finds_the_breaking_conv(
    small_cnn, hostile_weights, ort_report
):
    from shipyard.search.debug_precision import debug_precision

    ov = debug_precision(
        f"{small_cnn['model']}:make",
        small_cnn["data"],
        hostile_weights,
        backend="openvino",
        samples=8,
    )
    assert ov.layers and ov.layers[0].op_type == "Conv" and ov.layers[0].introduced > 0.5
    assert (
        ov.output_cosine is not None and ov.output_cosine < 0.9 and ort_report.output_cosine < 0.9
    )


def test_time_budget_stops_the_search_and_says_so(small_cnn, hostile_weights):
    from shipyard.pipeline.build import BuildOptions, build

    result = build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=hostile_weights,
            data=small_cnn["data"],
            max_drop=1.0,
            backends=["onnxruntime"],
            precisions=["int8"],
            bench=FAST,
            time_budget=0.0,
        )
    )
    assert result.chosen is None
    assert {c.precision for c in result.candidates} == {"int8"}  # no mixed attempt
    assert any("time budget" in n and "not rescued" in n for n in result.notes)
