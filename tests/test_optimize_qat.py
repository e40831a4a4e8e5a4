"""Quantisation-aware training: Q/DQ ONNX that ONNX Runtime and OpenVINO run, and QAT beating
post-training INT8 on a model built to be hostile to INT8 (one channel with a huge range)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from shipyard.dataset import split  # noqa: E402
from shipyard.optimize.qat import export_qdq_onnx, qat_candidates, quantization_aware  # noqa: E402


@pytest.fixture(scope="module")
def hostile():
    """Fused example:digits with channel 0 of the first block ×1000 and the next conv's input ÷1000.

    The function is unchanged (ReLU is positively homogeneous), but a per-tensor INT8 range for
    that activation must cover 1000× the other channels, which then all round to zero.
    """
    from shipyard.optimize.fuse import fuse
    from shipyard.sources.examples import digits

    source = digits.load()
    model, _, _ = fuse(source.module)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[0].weight[0] *= 1000
        convs[0].bias[0] *= 1000
        convs[1].weight[:, 0] /= 1000
    return source, model, split(source.example_data, 0.5, 0)


def _onnx_accuracy(path, data) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"image": data.inputs["image"]})[0]
    return float((logits.argmax(1) == data.labels).mean() * 100)


@pytest.mark.slow
def test_qat_beats_post_training_int8_on_a_hostile_model(hostile, tmp_path):
    onnx = pytest.importorskip("onnx")
    source, model, parts = hostile
    ptq = quantization_aware(
        model, parts.calibration, train=False
    )  # same quantiser, min/max ranges
    qat = quantization_aware(model, parts.calibration)
    ptq_path = export_qdq_onnx(ptq.module, source, tmp_path / "ptq.onnx").path
    qat_path = export_qdq_onnx(qat.module, source, tmp_path / "qat.onnx").path
    ops = [n.op_type for n in onnx.load(str(qat_path)).graph.node]
    assert ops.count("QuantizeLinear") >= 7 and ops.count("DequantizeLinear") >= 7
    ptq_accuracy, qat_accuracy = (
        _onnx_accuracy(ptq_path, parts.evaluation),
        _onnx_accuracy(qat_path, parts.evaluation),
    )
    assert ptq_accuracy < 30, "the hostile model must really break post-training INT8"
    assert qat_accuracy > ptq_accuracy + 30, (ptq_accuracy, qat_accuracy)


@pytest.mark.backend("openvino")
def test_qdq_onnx_runs_on_openvino_and_matches_the_fake_quant_model(hostile, tmp_path):
    import openvino as ov

    from shipyard.optimize.fuse import fuse

    source, _, parts = hostile
    quantized = quantization_aware(fuse(source.module)[0], parts.calibration, train=False).module
    path = export_qdq_onnx(quantized, source, tmp_path / "q.onnx").path
    images = parts.evaluation.inputs["image"][:64]
    compiled = ov.Core().compile_model(str(path), "CPU")
    got = compiled(images)[0]
    want = quantized(torch.from_numpy(images)).detach().numpy()
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.95
    assert (got.argmax(1) == parts.evaluation.labels[:64]).mean() > 0.9
    onnx_got = ort.InferenceSession(str(path)).run(None, {"image": images})[0]
    assert (onnx_got.argmax(1) == want.argmax(1)).mean() > 0.95


def test_fake_quant_train_and_eval_modes_agree(hostile):
    _, model, parts = hostile
    quantized = quantization_aware(model, parts.calibration, train=False).module
    images = torch.from_numpy(parts.evaluation.inputs["image"][:32])
    with torch.no_grad():
        eval_out = quantized.eval()(images)
        train_out = quantized.train()(images)
    quantized.eval()
    assert torch.allclose(eval_out, train_out, atol=1e-4 * eval_out.abs().max())


def test_qat_candidates_cover_onnxruntime_and_openvino(hostile):
    source = hostile[0]
    from shipyard.backends import get_backend

    plans = qat_candidates(source, ["onnxruntime", "openvino", "torch"])
    runnable = {
        (name, "int8") for name in ("onnxruntime", "openvino") if get_backend(name).available()[0]
    }
    assert (
        runnable and {(c.backend, c.precision) for c in plans} == runnable
    )  # torch runs no Q/DQ ONNX
    assert all(c.recipe.steps[0].name == "qat" for c in plans)
    assert all(c.key.endswith("+qat(epochs=8)") for c in plans)
    onnx_source = type(source)("m", "onnx", source.signature, "x")
    assert qat_candidates(onnx_source) == []


@pytest.mark.slow
@pytest.mark.backend("onnxruntime")
def test_qat_flag_builds_int8_candidates(tmp_path, monkeypatch):
    from shipyard.bench import BenchConfig
    from shipyard.optimize import qat as qat_module
    from shipyard.pipeline.build import BuildOptions, build
    from shipyard.records import Step

    monkeypatch.setattr(qat_module, "QAT_STEP", Step("qat", {"epochs": 2}))  # seconds, not minutes

    result = build(
        BuildOptions.create(
            "example:digits",
            backends=["onnxruntime"],
            qat=True,
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    )
    qat = [
        c
        for c in result.candidates
        if c.precision == "int8" and any(s.name == "qat" for s in c.recipe.steps)
    ]
    assert qat and qat[0].verification is not None, [c.error or c.why_failed for c in qat]
    # made and verified; a QAT model below post-training INT8 is dropped by design (seen on an
    # AVX2-only EPYC: 98.89 < 99.44 after 2 epochs)
    dropped = qat[0].why_failed.startswith("QAT ended below post-training INT8")
    assert qat[0].passed or dropped, qat[0].error or qat[0].why_failed
    assert [str(s) for s in qat[0].recipe.steps][1:] == ["reparam(branches=9)", "qat(epochs=2)"]


def test_qat_fallback_only_when_post_training_int8_failed(hostile, tmp_path):
    from shipyard.optimize.qat import qat_fallback
    from shipyard.records import Candidate, Recipe, Verification
    from shipyard.workshop import Workshop

    source, _, parts = hostile
    workshop = Workshop(source, tmp_path, parts.calibration)
    ptq = Candidate(
        "onnxruntime",
        "int8",
        Recipe().then("export", format="onnx").then("quantize", method="static-qdq"),
    )
    ptq.verification = Verification("accuracy", 50.0, 99.0, 49.0, False, 10)
    asked = []
    tried = qat_fallback([ptq], workshop, asked.append)
    assert [c.key for c in tried] == ["onnxruntime/int8+qat(epochs=8)"] and asked == [tried]
    ptq.verification.passed = True
    assert qat_fallback([ptq], workshop, asked.append) == []
