"""Fake-quantised conv and linear layers for quantisation-aware training, exportable as ONNX Q/DQ.

Activations entering each layer: per-tensor affine UINT8 with a *learnt* scale (LSQ-style, the
gradient reaches the scale through a straight-through rounding), initialised from the mean
per-sample min/max.
Weights: per-output-channel symmetric INT8, scale from the current weights.

In training mode the rounding is written in plain torch ops so gradients flow; in eval mode the
layers call ``torch.fake_quantize_per_tensor_affine`` / ``…per_channel_affine``, which the ONNX
exporter writes as QuantizeLinear → DequantizeLinear pairs that ONNX Runtime and OpenVINO run as
INT8 (and TensorRT 8+ reads as explicit quantisation). Both modes compute the same numbers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

ACT_RANGE = (0, 255)
WEIGHT_RANGE = (-128, 127)
"""Symmetric: scales put the largest weight at ±127, so -128 is never used (ONNX needs this
pair)."""


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (x.round() - x).detach()


class ActivationQuantizer(nn.Module):
    """Per-tensor UINT8 fake quantisation with a learnt log-scale and a fixed zero point."""

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.register_buffer("zero_point", torch.zeros((), dtype=torch.int32))
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("seen", torch.zeros(()))
        self.observing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.observing
        ):  # sums of per-sample extremes: the range is their mean (NNCF's estimator)
            flat = x.detach().reshape(len(x), -1) if x.dim() > 1 else x.detach().reshape(1, -1)
            self.low.add_(flat.amin(dim=1).sum())
            self.high.add_(flat.amax(dim=1).sum())
            self.seen.add_(len(flat))
            return x
        scale = self.log_scale.exp()
        if self.training:
            zp = self.zero_point.float()
            q = torch.clamp(_round_ste(x / scale) + zp, *ACT_RANGE)
            return (q - zp) * scale
        return torch.fake_quantize_per_tensor_affine(
            x, float(scale.detach()), int(self.zero_point), *ACT_RANGE
        )

    def settle(self) -> None:
        """Scale and zero point from the mean per-sample min and max (the range always holds 0).

        The mean, not the extremes over all samples: one outlier sample would otherwise widen the
        range for every other sample, and on a pretrained CNN that costs more than clipping it.
        """
        seen = max(float(self.seen), 1.0)
        low, high = min(float(self.low) / seen, 0.0), max(float(self.high) / seen, 0.0)
        scale = max((high - low) / (ACT_RANGE[1] - ACT_RANGE[0]), 1e-8)
        with torch.no_grad():
            self.log_scale.fill_(float(torch.tensor(scale).log()))
            self.zero_point.fill_(int(round(-low / scale)))
        self.observing = False


class WeightQuantizer(nn.Module):
    """Per-output-channel symmetric INT8; the scale follows the weights while training and is a
    constant (a buffer) in eval mode, so the exported graph carries it as an initializer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("zero_point", torch.zeros(channels, dtype=torch.int32))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.refresh(weight)
            shape = (-1,) + (1,) * (weight.dim() - 1)
            return torch.clamp(
                _round_ste(weight / self.scale.reshape(shape)), *WEIGHT_RANGE
            ) * self.scale.reshape(shape)
        return torch.fake_quantize_per_channel_affine(
            weight, self.scale, self.zero_point, 0, *WEIGHT_RANGE
        )

    def refresh(self, weight: torch.Tensor) -> None:
        with torch.no_grad():
            amax = weight.detach().abs().amax(dim=tuple(range(1, weight.dim())))
            self.scale.copy_(amax.clamp_min(1e-12) / WEIGHT_RANGE[1])


class _QuantLayer(nn.Module):
    """Refreshes the weight scale whenever the layer goes to eval mode (weights may have moved)."""

    def layer(self) -> nn.Module:
        raise NotImplementedError

    def train(self, mode: bool = True) -> _QuantLayer:
        super().train(mode)
        if not mode:
            self.weight_quant.refresh(self.layer().weight)
        return self


class QuantConv2d(_QuantLayer):
    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.input_quant = ActivationQuantizer()
        self.weight_quant = WeightQuantizer(conv.out_channels)
        self.weight_quant.refresh(conv.weight)

    def layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv2d(
            self.input_quant(x),
            self.weight_quant(c.weight),
            c.bias,
            c.stride,
            c.padding,
            c.dilation,
            c.groups,
        )


class QuantLinear(_QuantLayer):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.input_quant = ActivationQuantizer()
        self.weight_quant = WeightQuantizer(linear.out_features)
        self.weight_quant.refresh(linear.weight)

    def layer(self) -> nn.Module:
        return self.linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(
            self.input_quant(x), self.weight_quant(self.linear.weight), self.linear.bias
        )


def insert_quantizers(module: nn.Module) -> list[ActivationQuantizer]:
    """Wrap every zero-padded Conv2d and every Linear of ``module`` in place; the quantizers
    made."""
    replace = [
        (name, layer)
        for name, layer in module.named_modules()
        if isinstance(layer, nn.Linear)
        or (
            isinstance(layer, nn.Conv2d)
            and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str)
        )
    ]
    for name, layer in replace:
        parent_name, _, leaf = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(
            parent, leaf, QuantConv2d(layer) if isinstance(layer, nn.Conv2d) else QuantLinear(layer)
        )
    return [m for m in module.modules() if isinstance(m, ActivationQuantizer)]


def calibrate(
    module: nn.Module, quantizers: list[ActivationQuantizer], feeds: list[list[Any]]
) -> None:
    """Observe activation ranges on ``feeds`` (lists of input tensors), then fix scales from
    them."""
    for q in quantizers:
        q.observing = True
    module.eval()
    with torch.no_grad():
        for feed in feeds:
            module(*feed)
    for q in quantizers:
        q.settle()
