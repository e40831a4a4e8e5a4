"""Operators no exporter knows: find them, and deploy around them by splitting the model.

detect.py     which op, where (module path), which backends can run it
partition.py  cut the ``torch.export`` graph around those ops into parts
artifact.py   the ``.split.zip`` artifact: plan + ONNX parts + PyTorch parts + op sources
session.py    the ``split`` backend: ONNX Runtime for the parts, PyTorch between them
plan.py       the ``split`` build candidate and recipe step
"""

from shipyard.convert.custom_ops import UnknownOp, find_unknown_ops, register_translation

__all__ = ["UnknownOp", "find_unknown_ops", "register_translation"]
