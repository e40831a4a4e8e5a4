"""``shipyard inspect MODEL``: the numbers a deployment engineer asks for before choosing a target.

Inputs and outputs, parameter count, FLOPs per layer and in total, every operator with the
backends that run it, a per-layer time profile from ONNX Runtime's profiler, and each layer's
arithmetic intensity against this machine's measured peak (compute- or memory-bound).

Example::

    >>> from shipyard.inspect import inspect_model, format_text
    >>> print(format_text(inspect_model("example:digits")))     # doctest: +SKIP
"""

from shipyard.inspect.core import inspect_model
from shipyard.inspect.records import Inspection, LayerProfile, Machine, OperatorSupport
from shipyard.inspect.text import format_text

__all__ = [
    "Inspection",
    "LayerProfile",
    "Machine",
    "OperatorSupport",
    "format_text",
    "inspect_model",
]
