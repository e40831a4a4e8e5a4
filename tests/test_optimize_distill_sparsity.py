"""Distillation into a user's student and 2:4 sparsity, end to end on example:digits."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shipyard.bench import BenchConfig  # noqa: E402
from shipyard.errors import SourceError, UsageError  # noqa: E402
from shipyard.optimize import sparsity as sp  # noqa: E402

STUDENT = textwrap.dedent("""
    from torch import nn

    def make():
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32),
                             nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

    def wrong():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
""")


def _options(tmp_path, **extra):
    from shipyard.pipeline.build import BuildOptions

    return BuildOptions.create(
        "example:digits",
        backends=["onnxruntime"],
        precisions=["fp32"],  # the sparse weights are read from the FP32 graph
        out=tmp_path / "pkg",
        max_drop=3.0,
        bench=BenchConfig(rounds=1, block_seconds=0.05),
        **extra,
    )


@pytest.mark.slow
@pytest.mark.backend("onnxruntime")
def test_distill_into_student_end_to_end(tmp_path):
    from shipyard.pipeline.build import build

    student = tmp_path / "student.py"
    student.write_text(STUDENT)
    options = _options(tmp_path, distill_into=f"{student}:make")
    options = options.replace(
        max_drop=30.0
    )  # 287 training images and a 6k-parameter student from scratch: ~80%, not 99%
    result = build(options)
    params = sum(p.numel() for p in result.source.module.parameters())
    assert params < 10_000  # the student (fused), not the 300k-parameter teacher
    assert result.chosen is not None and result.chosen.verification.value > 70.0
    manifest = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    recipe = next(c["recipe"] for c in manifest["candidates"] if c["passed"])
    assert recipe[0]["step"] == "distill" and recipe[0]["student"].endswith("student.py:make")


def test_student_must_match_the_signature(tmp_path):
    from shipyard.optimize.distill import load_student
    from shipyard.sources.examples import digits

    student = tmp_path / "student.py"
    student.write_text(STUDENT)
    with pytest.raises(SourceError, match="must match"):
        load_student(f"{student}:wrong", digits.load().signature)
    with pytest.raises(UsageError, match="FILE.py:FUNCTION"):
        load_student("student.py", digits.load().signature)


def test_two_four_masks():
    layer = torch.nn.Conv2d(8, 4, 3)
    layers = {"conv": layer}
    masks = sp.make_masks(layers, sp.Pattern(2, 4))
    assert not sp.follows_pattern(layer.weight, sp.Pattern(2, 4))
    sp.apply_masks(layers, masks)
    assert sp.follows_pattern(layer.weight, sp.Pattern(2, 4))
    assert sp.sparse_fraction(layers) == pytest.approx(0.5)
    # the largest two magnitudes of each group of four input channels are the ones kept
    group = layer.weight.detach()[0, 0:4, 1, 1]
    assert (group != 0).sum() == 2
    with pytest.raises(UsageError, match="N:M"):
        sp.parse_pattern("4:2")


@pytest.mark.slow
@pytest.mark.backend("onnxruntime")
def test_sparsity_two_four_end_to_end(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from shipyard.pipeline.build import build

    result = build(_options(tmp_path, sparsity="2:4"))
    assert result.chosen is not None and result.chosen.verification.drop <= 3.0
    assert [s.name for s in result.source.steps] == ["fold-bn", "reparam", "sparsity"]
    graph = onnx.load(str(tmp_path / "pkg" / "model" / "model.onnx")).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    sparse = 0
    for node in graph.node:
        if node.op_type in ("Conv", "FusedConv", "Gemm", "MatMul") and node.input[1] in weights:
            w = weights[node.input[1]]
            w = w if "Conv" in node.op_type else (w.T if node.op_type == "MatMul" else w)
            if w.ndim >= 2 and w.shape[1] % 4 == 0:
                grouped = np.moveaxis(w, 1, -1).reshape(*np.moveaxis(w, 1, -1).shape[:-1], -1, 4)
                assert ((grouped != 0).sum(-1) <= 2).all(), node.name
                sparse += 1
    assert sparse >= 5  # every conv but the 1-channel stem, and the classifier
