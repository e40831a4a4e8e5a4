"""Structured pruning of a small CNN the tool never saw: fewer weights for real, accuracy kept."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from shipyard.bench import BenchConfig  # noqa: E402
from shipyard.errors import UsageError  # noqa: E402
from shipyard.optimize.prune import count_parameters, prune  # noqa: E402


def _load(small_cnn):
    from shipyard.sources.torch_factory import load_factory_source
    from shipyard.sources.torch_module import InputHint

    return load_factory_source(
        f"{small_cnn['model']}:make",
        small_cnn["weights"],
        [InputHint("image", "float32", (3, 16, 16))],
    )


def test_protected_layers_keep_their_channels(small_cnn):
    module = _load(small_cnn).module
    example = [torch.randn(2, 3, 16, 16)]
    result = prune(module, example, 0.5, "l1", protect=["features.0"])
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert (
        convs[0].out_channels == 16 and convs[1].out_channels == 16
    )  # 32 → 16; the protected one stays
    assert convs[2].out_channels == 16
    assert module.head[2].out_features == 4  # the output layer is never pruned
    assert "features.0" in result.protected
    assert module(example[0]).shape == (2, 4)


def test_unknown_protect_and_bad_ratio_are_clear(small_cnn):
    module = _load(small_cnn).module
    with pytest.raises(UsageError, match="no such module"):
        prune(module, [torch.randn(2, 3, 16, 16)], 0.3, protect=["nope"])
    with pytest.raises(UsageError, match="between 0 and 1"):
        prune(module, [torch.randn(2, 3, 16, 16)], 1.5)


@pytest.mark.slow
@pytest.mark.backend("onnxruntime")
def test_prune_build_cuts_weights_and_keeps_accuracy(small_cnn, tmp_path):
    from shipyard.pipeline.build import BuildOptions, build

    options = BuildOptions.create(
        f"{small_cnn['model']}:make",
        weights=small_cnn["weights"],
        data=small_cnn["data"],
        prune=0.3,
        backends=["onnxruntime"],
        out=tmp_path / "pkg",
        bench=BenchConfig(rounds=1, block_seconds=0.05),
    )
    result = build(options)
    original = _load(small_cnn).module
    assert count_parameters(result.source.module) <= 0.8 * count_parameters(original)
    onnx_candidates = [
        c for c in result.candidates if c.backend == "onnxruntime" and c.verification
    ]
    assert onnx_candidates and all(c.verification.drop <= 1.0 for c in onnx_candidates)
    assert (
        onnx_candidates[0].verification.reference_value > 80
    )  # real held-out accuracy, not chance
    steps = [s["step"] for s in onnx_candidates[0].to_json()["recipe"]]
    assert steps[:2] == ["prune", "fold-bn"]
    import onnx
    from onnx import numpy_helper

    conv_widths = [
        m.out_channels for m in result.source.module.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    # 16, 32, 32 channels before; 30% removed for real, kept widths rounded up to multiples of 8
    assert conv_widths == [16, 24, 24], conv_widths
    graph = onnx.load(str(result.package / "model" / "model.onnx")).graph
    packaged = sum(numpy_helper.to_array(i).size for i in graph.initializer)
    packaged += sum(
        numpy_helper.to_array(n.attribute[0].t).size for n in graph.node if n.op_type == "Constant"
    )
    assert packaged <= 0.8 * count_parameters(original)
