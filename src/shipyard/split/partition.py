"""Cutting a model around its unknown operators into parts a runtime can run.

The model is captured with ``torch.export`` (batch axis dynamic); every call of an unknown
operator becomes a part of its own and the runs of ordinary operators between them become the
other parts (``torch.fx`` ``split_module``). Each part is wrapped so its weights live inside it,
which lets the ordinary parts export to ONNX as self-contained graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.convert.custom_ops import KNOWN_NAMESPACES
from shipyard.errors import ConversionError


@dataclass
class Part:
    """One piece of the split model: ``torch`` parts hold unknown ops, ``onnx`` parts the rest."""

    name: str
    kind: str
    module: Any
    inputs: list[str]
    outputs: list[str]
    example: tuple = ()
    ops: list[str] = field(default_factory=list)
    module_paths: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = span(self.module_paths)
        if self.kind == "torch":
            return f"{self.name}: {', '.join(sorted(set(self.ops)))} in PyTorch ({where})"
        return f"{self.name}: {len(self.ops)} ops ({where})"


@dataclass
class Partition:
    """The parts in running order, with the model's input and output value names."""

    parts: list[Part]
    inputs: list[str]
    outputs: list[str]


def is_unknown(node: Any) -> bool:
    return (
        node.op == "call_function"
        and getattr(node.target, "namespace", "aten") not in KNOWN_NAMESPACES
    )


def partition(module: Any, args: tuple, input_names: list[str]) -> Partition:
    """Split ``module`` (run on example ``args``, batch ≥ 2) around its unknown operators."""
    import torch
    from torch.fx.passes.split_module import split_module

    graph_module = _export(module, args)
    labels = _label_nodes(graph_module)
    if not any(is_unknown(n) for n in graph_module.graph.nodes):
        raise ConversionError(
            "nothing to split: every operator of the model is known to the ONNX exporters"
        )
    split = split_module(graph_module, module, lambda n: labels[n], keep_original_order=True)
    examples = _part_examples(split, args)
    parts = []
    for node in split.graph.nodes:
        if node.op == "call_module":
            parts.append(_make_part(split, node, examples[node.name], graph_module))
    placeholders = [n.name for n in split.graph.nodes if n.op == "placeholder"]
    output = next(n for n in split.graph.nodes if n.op == "output")
    outputs = [_value_name(v) for v in torch.utils._pytree.tree_leaves(output.args[0])]
    if len(placeholders) != len(input_names):
        raise ConversionError(
            f"the exported model takes {len(placeholders)} inputs; expected {len(input_names)}"
        )
    rename = dict(zip(placeholders, input_names))
    for part in parts:
        part.inputs = [rename.get(n, n) for n in part.inputs]
    return Partition(parts, list(input_names), outputs)


def _export(module: Any, args: tuple) -> Any:
    import torch

    dynamic = tuple({0: torch.export.Dim.DYNAMIC} if a.ndim else {} for a in args)
    try:
        return torch.export.export(module.eval(), args, dynamic_shapes=dynamic).module()
    except Exception as exc:
        raise ConversionError(
            f"torch.export cannot capture the model to split it: {type(exc).__name__}: "
            f"{str(exc)[:300]}"
        ) from exc


def _label_nodes(graph_module: Any) -> dict:
    """Part number per node: unknown ops get their own number, runs between them share one."""
    labels, current = {}, 0
    for node in graph_module.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if is_unknown(node):
            labels[node] = current + 1
            current += 2
        else:
            labels[node] = current
    return labels


def _part_examples(split: Any, args: tuple) -> dict[str, tuple]:
    """The arguments each part receives when the split model runs on ``args``."""
    import torch

    seen: dict[str, tuple] = {}

    class Recorder(torch.fx.Interpreter):
        def call_module(self, target, fargs, kwargs):
            seen[target] = tuple(fargs)
            return super().call_module(target, fargs, kwargs)

    with torch.no_grad():
        Recorder(split).run(*args)
    return seen


def _make_part(split: Any, node: Any, example: tuple, original: Any) -> Part:
    import torch

    submodule = getattr(split, node.target)
    tensor_inputs = [i for i, a in enumerate(node.args) if _is_activation(a)]
    constants = {i: example[i] for i in range(len(node.args)) if i not in tensor_inputs}
    bound = bind_part(submodule, tensor_inputs, constants)
    ops = [
        n
        for n in submodule.graph.nodes
        if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload)
    ]
    kind = "torch" if any(is_unknown(n) for n in ops) else "onnx"
    outputs = (
        [u.name for u in sorted(node.users, key=lambda u: u.args[1])]
        if node.users and all(_is_getitem(u) for u in node.users)
        else [node.name]
    )
    return Part(
        node.target,
        kind,
        bound,
        [node.args[i].name for i in tensor_inputs],
        outputs,
        tuple(example[i] for i in tensor_inputs),
        [_op_label(n) for n in ops],
        _module_paths(ops),
    )


def _is_activation(arg: Any) -> bool:
    """A value computed by the model (not a weight the exporter captured as an attribute)."""
    return getattr(arg, "op", None) in ("placeholder", "call_module", "call_function")


def _is_getitem(node: Any) -> bool:
    import operator

    return node.op == "call_function" and node.target is operator.getitem


def _value_name(node: Any) -> str:
    return node.name


def _op_label(node: Any) -> str:
    return node.target._schema.name if is_unknown(node) else str(node.target).split(".")[1]


def _module_paths(nodes: list) -> list[str]:
    paths: list[str] = []
    for node in nodes:
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack.values())[-1][0] if stack else ""
        if path not in paths:
            paths.append(path)
    return paths


def span(paths: list[str]) -> str:
    named = [p or "<root>" for p in paths]
    if len(named) <= 3:
        return ", ".join(named) or "<root>"
    return f"{named[0]} … {named[-1]}"


def _bound_class():
    import torch

    class Bound(torch.nn.Module):
        """A part with its weights inside: ``forward`` takes only the activations."""

        def __init__(
            self, submodule: Any, tensor_inputs: list[int], constants: dict[int, Any]
        ) -> None:
            super().__init__()
            self.part = submodule
            self.tensor_inputs = tensor_inputs
            self.count = len(tensor_inputs) + len(constants)
            for index, value in constants.items():
                if isinstance(value, torch.nn.Parameter) or not isinstance(value, torch.Tensor):
                    setattr(self, f"const_{index}", value)
                else:
                    self.register_buffer(f"const_{index}", value)

        def forward(self, *activations: Any) -> tuple:
            given = dict(zip(self.tensor_inputs, activations))
            args = [
                given[i] if i in given else getattr(self, f"const_{i}") for i in range(self.count)
            ]
            result = self.part(*args)
            return tuple(result) if isinstance(result, (tuple, list)) else (result,)

    return Bound


def bind_part(submodule: Any, tensor_inputs: list[int], constants: dict[int, Any]) -> Any:
    """Wrap a split part so the weights it was handed become its own attributes."""
    return _bound_class()(submodule, tensor_inputs, constants)
