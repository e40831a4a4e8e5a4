"""BN folding and re-parameterisation found in the traced graph, on blocks nobody taught to fuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from shipyard.dataset import Dataset  # noqa: E402
from shipyard.optimize.fuse import fuse  # noqa: E402
from shipyard.optimize.steps import fuse_step, relative_error  # noqa: E402


class Notes:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def stage(self, text: str) -> None:
        pass

    def note(self, text: str) -> None:
        self.notes.append(text)

    def candidate(self, candidate) -> None:
        pass


class MyBlock(nn.Module):
    """A user's own MobileOne-ish block: 3×3+BN, 1×1+BN, identity BN, all grouped; no fusing
    code."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False)
        self.a_bn = nn.BatchNorm2d(channels)
        self.b = nn.Conv2d(channels, channels, 1, groups=groups, bias=False)
        self.b_bn = nn.BatchNorm2d(channels)
        self.skip = nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(self.a_bn(self.a(x)) + self.b_bn(self.b(x)) + self.skip(x))


class MyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(8)
        self.blocks = nn.Sequential(MyBlock(8, 1), MyBlock(8, 2), MyBlock(8, 8))
        self.fc = nn.Linear(8, 5)
        self.fc_bn = nn.BatchNorm1d(5)

    def forward(self, x):
        x = self.blocks(torch.relu(self.stem_bn(self.stem(x))))
        return self.fc_bn(self.fc(x.mean((2, 3))))


def _randomised(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics, as after training."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for tensor in (module.weight, module.bias, module.running_mean):
                tensor.data = torch.randn(tensor.shape, generator=generator) * 0.5
            module.running_var.data = (
                torch.rand(module.running_var.shape, generator=generator) + 0.5
            )
    return model.eval()


def _data(count: int = 16) -> Dataset:
    return Dataset({"x": np.random.default_rng(0).normal(size=(count, 3, 8, 8)).astype(np.float32)})


def test_user_block_becomes_one_conv_per_block():
    model = _randomised(MyNet())
    fused, folded, merged = fuse(model)
    layers = [
        m for m in fused.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d))
    ]
    assert [type(m) for m in layers] == [nn.Conv2d] * 4  # stem + one conv per block, no BN left
    assert (folded, merged) == (8, 6)
    assert relative_error(model, fused, _data()) < 1e-5
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), (
        "the original must stay untouched"
    )


def test_plain_residual_and_strided_branches():
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c3 = nn.Conv2d(4, 4, 3, padding=1)
            self.c1 = nn.Conv2d(4, 4, 1)
            self.down3 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
            self.down1 = nn.Conv2d(4, 6, 1, stride=2)
            self.other = nn.Conv2d(6, 6, 3, padding=1)

        def forward(self, x):
            x = self.c3(x) + x  # plain identity branch
            y = self.c1(x)
            y = self.down3(y) + self.down1(y)
            return self.other(y) + y.sum()  # a sum that is not a branch pair stays as it is

    model = Mixed().eval()
    fused, _, merged = fuse(model)
    assert merged == 2
    data = Dataset({"x": np.random.default_rng(1).normal(size=(4, 4, 8, 8)).astype(np.float32)})
    assert relative_error(model, fused, data) < 1e-5


def test_untraceable_model_is_left_alone_with_a_note():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                return self.bn(self.conv(x))
            return x

    model, reporter, steps = Branchy().eval(), Notes(), []
    assert fuse_step(None, model, _data(), reporter, steps) is model
    assert steps == [] and "could not trace" in reporter.notes[0]


def test_fusing_that_changes_outputs_is_undone(monkeypatch):
    import shipyard.optimize.fuse as fuse_module

    def broken(module):
        fused, folded, merged = fuse(module)
        with torch.no_grad():
            next(m for m in fused.modules() if isinstance(m, nn.Conv2d)).bias.add_(1.0)
        return fused, folded, merged

    monkeypatch.setattr(fuse_module, "fuse", broken)
    model, reporter, steps = _randomised(MyNet()), Notes(), []
    assert fuse_step(None, model, _data(), reporter, steps) is model
    assert steps == [] and "undone" in reporter.notes[0]


def test_digits_package_has_one_conv_per_block(digits_package):
    """example:digits is written without fusing code; its package holds one conv per RepVGG
    block."""
    onnx = pytest.importorskip("onnx")
    import shipyard
    from shipyard.sources.examples import digits

    manifest = json.loads((digits_package / "manifest.json").read_text())
    model_file = next(f for f in manifest["files"] if f.endswith(".onnx"))
    graph = onnx.load(str(digits_package / model_file)).graph
    ops = [node.op_type for node in graph.node]
    # ONNX Runtime's optimizer may have written Conv+ReLU as FusedConv: still one conv per block
    assert sum(op in ("Conv", "FusedConv") for op in ops) == len(digits.make().features), ops
    assert "BatchNormalization" not in ops
    chosen = next(c for c in manifest["candidates"] if c["backend"] == manifest["backend"])
    assert [s["step"] for s in chosen["recipe"]][:2] == ["fold-bn", "reparam"]
    source, data = digits.load(), digits.held_out()
    images = data.inputs["image"][:200]
    with torch.no_grad():
        want = source.module(torch.from_numpy(images)).numpy()
    got = shipyard.load(digits_package).run({"image": images})["logits"]
    assert np.abs(got - want).max() < 1e-4
