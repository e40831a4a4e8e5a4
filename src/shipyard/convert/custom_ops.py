"""Finding the operators no exporter knows: which op, where in the model, and who can run it.

One eager forward pass under a ``TorchDispatchMode`` sees every operator the model calls, with
forward hooks keeping the module path of the call. ATen and prims operators are known to the
ONNX exporters; anything else (a ``torch.library`` custom op such as ``mylib::gate``) is not,
unless the user hands a translation for it (see ``translation_table``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KNOWN_NAMESPACES = ("aten", "prims", "_c10d_functional", "c10d_functional")
"""Operator namespaces both ONNX exporters translate."""
TRANSLATION_ATTRIBUTE = "onnx_translation_table"
"""A model attribute mapping a custom op (``torch.ops.ns.name.default``) to an onnxscript
function."""


@dataclass
class UnknownOp:
    """A custom operator: its qualified name, where it is called and which backends can run it."""

    name: str
    module_paths: list[str] = field(default_factory=list)
    calls: int = 0
    translated: bool = False

    @property
    def where(self) -> str:
        return ", ".join(p or "<root>" for p in self.module_paths)

    @property
    def runs_on(self) -> list[str]:
        """Backends that can run this op: PyTorch always; ONNX runtimes only with a translation."""
        return ["torch"] + (["onnxruntime", "openvino"] if self.translated else [])

    def describe(self) -> str:
        how = (
            "translated to ONNX by the user's function"
            if self.translated
            else "unknown to both ONNX exporters; runs in PyTorch only"
        )
        return f"{self.name} (called {self.calls}× in {self.where}): {how}"


def find_unknown_ops(module: Any, args: tuple) -> list[UnknownOp]:
    """Every operator outside ATen/prims that one forward pass of ``module(*args)`` calls."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    stack: list[str] = [""]
    found: dict[str, UnknownOp] = {}
    translated = {_op_name(op) for op in translation_table(module)}

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, fargs=(), kwargs=None):
            namespace = getattr(func, "namespace", "aten")
            if namespace not in KNOWN_NAMESPACES:
                op = found.setdefault(_op_name(func), UnknownOp(_op_name(func)))
                op.calls += 1
                op.translated = op.name in translated
                if stack[-1] not in op.module_paths:
                    op.module_paths.append(stack[-1])
            return func(*fargs, **(kwargs or {}))

    handles = _track_module_paths(module, stack)
    try:
        with torch.inference_mode(), Spy():
            module(*args)
    finally:
        for handle in handles:
            handle.remove()
    return list(found.values())


_TRANSLATIONS: dict = {}


def register_translation(op: Any, function: Any) -> None:
    """Tell every export in this process how to write custom ``op`` in ONNX (an onnxscript
    function).

    The reliable way: model transforms (BN folding traces the model anew) keep no attributes, so
    a table set on the model (``onnx_translation_table``) only counts while the model is unchanged.
    """
    _TRANSLATIONS[op] = function


def translation_table(module: Any) -> dict:
    """``{custom op: onnxscript function}``: the registered ones plus any the model carries."""
    table = getattr(module, TRANSLATION_ATTRIBUTE, None)
    return {**_TRANSLATIONS, **(table if isinstance(table, dict) else {})}


def _op_name(op: Any) -> str:
    """``mylib::gate`` for ``torch.ops.mylib.gate.default`` (or for the overload packet)."""
    schema = getattr(op, "_schema", None)
    if schema is not None:
        return schema.name
    return str(op).replace(".default", "").replace(".", "::", 1)


def _track_module_paths(module: Any, stack: list[str]) -> list:
    handles = []
    for path, child in module.named_modules():
        if not path:
            continue
        handles.append(child.register_forward_pre_hook(_enter(stack, path)))
        handles.append(child.register_forward_hook(_leave(stack)))
    return handles


def _enter(stack: list[str], path: str):
    def hook(_module, _args) -> None:
        stack.append(path)

    return hook


def _leave(stack: list[str]):
    def hook(_module, _args, _output) -> None:  # returning None keeps the module's output
        stack.pop()

    return hook
