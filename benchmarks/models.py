"""Factories for benchmark models (``benchmarks/models.py:NAME``). Random weights: speed only."""

from __future__ import annotations


def resnet50():
    import torchvision

    return torchvision.models.resnet50(weights=None)


def mobilenet_v3():
    import torchvision

    return torchvision.models.mobilenet_v3_large(weights=None)
