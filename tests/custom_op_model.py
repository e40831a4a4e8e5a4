"""A model with an operator no ONNX exporter knows, for the tests and the split benchmark.

``mylib::channel_gate`` is a ``torch.library`` custom op (a squeeze-and-excite style gate written
in Python here, standing in for one written in C++/CUDA). Most of the compute is ordinary
convolutions, before and after it::

    shipyard build tests/custom_op_model.py:make_model --input-shape image:3x32x32 --out pkg
"""

from typing import Any

OP_NAME = "shipyard_demo::channel_gate"
TRANSLATED_OP = "shipyard_demo::channel_gate_onnx"


def register_op(name: str = OP_NAME) -> Any:
    """Register the custom op once per process and return it.

    (No ``from __future__ import annotations`` here: torch.library reads real annotations.)
    """
    import torch
    from torch._library.custom_ops import OPDEFS

    if name not in OPDEFS:

        @torch.library.custom_op(name, mutates_args=(), schema="(Tensor x, float alpha) -> Tensor")
        def channel_gate(x, alpha):
            return x * torch.sigmoid(alpha * x.mean(dim=(2, 3), keepdim=True))

        @channel_gate.register_fake
        def _(x, alpha):
            return torch.empty_like(x)

    namespace, _, op = name.partition("::")
    return getattr(getattr(torch.ops, namespace), op).default


def make_model(
    width: int = 32, depth: int = 6, classes: int = 10, seed: int = 0, op_name: str = OP_NAME
) -> Any:
    """A conv net: ``depth`` conv-BN-ReLU blocks, the custom gate, ``depth`` more, a linear head."""
    import torch
    from torch import nn

    gate = register_op(op_name)
    torch.manual_seed(seed)

    def convs(first: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for index in range(depth):
            layers += [
                nn.Conv2d(first if index == 0 else width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
        return nn.Sequential(*layers)

    class GatedNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = convs(3)
            self.body = convs(width)
            self.head = nn.Linear(width, classes)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            features = gate(self.stem(image), 1.5)
            return self.head(self.body(features).mean(dim=(2, 3)))

    model = GatedNet()
    with torch.no_grad():  # BN statistics as a trained model would have them, not 0 and 1
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def gate_onnx(x, alpha: float = 1.5):
    """The op written in ONNX (onnxscript ops): what a user hands over instead of a split."""
    from onnxscript import opset18 as op

    mean = op.ReduceMean(x, op.Constant(value_ints=[2, 3]), keepdims=1)
    return op.Mul(x, op.Sigmoid(op.Mul(mean, op.CastLike(op.Constant(value_float=alpha), x))))


def make_translated_model(width: int = 32, depth: int = 6) -> Any:
    """The same network on a twin op (``TRANSLATED_OP``) whose ONNX translation is registered: it
    exports whole, so the build plans no split."""
    from shipyard.convert.custom_ops import register_translation

    register_translation(register_op(TRANSLATED_OP), gate_onnx)
    return make_model(width, depth, op_name=TRANSLATED_OP)


# importing this file registers the op, as a user's op library would (packages rely on it)
register_op()
