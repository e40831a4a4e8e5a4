"""Factories for benchmark models (``benchmarks/models.py:NAME``). Random weights: speed only."""

from __future__ import annotations


def resnet50():
    import torchvision

    return torchvision.models.resnet50(weights=None)


def mobilenet_v3():
    import torchvision

    return torchvision.models.mobilenet_v3_large(weights=None)


def mobilenet_v3_small():
    import torchvision

    return torchvision.models.mobilenet_v3_small(weights=None)


def small_cnn():
    """A small CNN none of the tools was written for (3×32×32 input, 10 classes)."""
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> list:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(3, 32, 1),
        *block(32, 64, 2),
        *block(64, 64, 1),
        *block(64, 128, 2),
        *block(128, 128, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 10),
    )
