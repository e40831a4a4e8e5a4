"""``nncf.quantize_with_accuracy_control`` as an OpenVINO INT8 attempt of the accuracy-aware search,
on the small CNN made hostile to INT8 (shared with test_quantize_build), real OpenVINO and NNCF."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.bench import BenchConfig
from shipyard.dataset import Dataset

FAST = BenchConfig(rounds=1, block_seconds=0.05)
AC = "openvino/int8+nncf-accuracy-control"
pytestmark = pytest.mark.usefixtures("no_artifact_cache")


def test_holdout_is_disjoint_and_keeps_labels():
    from shipyard.backends.openvino.accuracy_control import split_holdout

    data = Dataset({"x": np.arange(200, dtype=np.float32)[:, None]}, np.arange(200) % 4)
    fit, held = split_holdout(data)
    assert len(held) == 50 and len(fit) == 150
    assert not set(fit.inputs["x"][:, 0]) & set(held.inputs["x"][:, 0])
    assert (held.labels == held.inputs["x"][:, 0].astype(int) % 4).all()


def test_per_sample_scores_average_to_the_build_metric():
    from shipyard.backends.openvino.accuracy_control import per_sample
    from shipyard.verify.metrics import metric_value

    rng = np.random.default_rng(0)
    reference, output = rng.normal(size=(40, 4)), rng.normal(size=(40, 4))
    labels = rng.integers(0, 4, 40)
    for metric in ("accuracy", "agreement", "cosine"):
        scores = per_sample(metric, reference, output, labels)
        assert scores.shape == (40,)
        assert np.isclose(scores.mean(), metric_value(metric, reference, output, labels))


@pytest.fixture(scope="module")
def openvino_build(small_cnn, hostile_weights, tmp_path_factory):  # noqa: F811
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from shipyard.pipeline.build import BuildOptions, build

    out = tmp_path_factory.mktemp("ac") / "pkg"
    result = build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=hostile_weights,
            data=small_cnn["data"],
            max_drop=1.0,
            backends=["openvino"],
            precisions=["int8"],
            bench=FAST,
            out=out,
        )
    )
    return result, out


@pytest.mark.slow
@pytest.mark.backend("openvino")
@pytest.mark.backend("nncf")
def test_hostile_model_gets_an_accuracy_control_attempt(openvino_build):
    result, _ = openvino_build
    by_key = {c.key: c for c in result.candidates}
    plain = next(c for c in result.candidates if c.recipe.steps[-1].options.get("method") == "nncf")
    assert not plain.passed and "points below" in plain.why_failed
    control = by_key[AC]
    assert not control.error, control.error
    step = control.recipe.steps[-1]
    assert step.options == {
        "method": "nncf-accuracy-control",
        "metric": "accuracy",
        "max_drop": 1.0,
    }
    verification = control.verification
    assert verification.metric == "accuracy" and verification.samples == result.evaluation_size
    assert verification.drop < plain.verification.drop  # reverting layers recovered accuracy
    assert control.passed == (verification.drop <= 1.0) and control.timing.p50_ms > 0
    assert any(AC in n and "missed the budget" in n for n in result.notes)


@pytest.mark.slow
@pytest.mark.backend("openvino")
@pytest.mark.backend("nncf")
def test_passing_accuracy_control_stops_the_layerwise_search_and_is_int8(openvino_build):
    import json

    import openvino as ov

    result, out = openvino_build
    control = next(c for c in result.candidates if c.key == AC)
    if not control.passed:
        pytest.fail(f"accuracy control did not rescue the hostile model: {control.why_failed}")
    assert not any(
        c.precision == "mixed" for c in result.candidates
    )  # no layer-wise attempt was needed
    assert result.chosen is not None and result.chosen.verification.drop <= 1.0
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(
        c
        for c in manifest["candidates"]
        if c["recipe"][-1].get("method") == "nncf-accuracy-control"
    )
    assert entry["passed"] and entry["metric"] == "accuracy" and entry["drop"] <= 1.0
    if manifest["recipe"][-1].get("method") == "nncf-accuracy-control":
        model = ov.Core().read_model(str(out / manifest["model_file"]))
        assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())  # still INT8
