"""Lossless fusing found in the traced graph: BN folding and structural re-parameterisation.

The module is traced with ``torch.fx``; nothing depends on class names or a ``reparameterize()``
method, so a user's own multi-branch block is fused as long as it is built from plain layers:

* ``Conv → BatchNorm`` and ``Linear → BatchNorm1d`` (the conv/linear used only by the BN): the BN
  is folded into the weights and bias.
* ``conv_a(x) + conv_b(x)`` with the same input, stride, dilation and groups (RepVGG / MobileOne
  branches): one conv whose kernel is the sum of both, the smaller kernel zero-padded about its
  centre. An identity branch (``x`` or ``BatchNorm(x)``) counts as a 1×1 identity conv.

The caller checks the fused module against the original (``fuse_module`` does it for you).
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import Any


def fuse(module: Any) -> tuple[Any, int, int]:
    """(a traced, fused copy of ``module`` in eval mode, BNs folded, branches merged)."""
    import torch
    from torch import fx

    graph_module = fx.symbolic_trace(copy.deepcopy(module).eval())
    modules = dict(graph_module.named_modules())
    with torch.no_grad():
        folded = _fold_all(graph_module, modules)
        merged = 0
        while _merge_one(graph_module, modules):
            merged += 1
        folded += _fold_all(graph_module, modules)
    graph_module.graph.eliminate_dead_code()
    graph_module.graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()
    return graph_module.eval(), folded, merged


def _module(node: Any, modules: dict[str, Any], kinds: tuple[type, ...]) -> Any:
    if node is not None and getattr(node, "op", None) == "call_module":
        found = modules.get(node.target)
        if isinstance(found, kinds):
            return found
    return None


def _bn_foldable(bn: Any) -> bool:
    return bn.track_running_stats and bn.running_mean is not None and not bn.training


def _fold_all(graph_module: Any, modules: dict[str, Any]) -> int:
    """Fold every BN whose input is a conv (or linear) used by nothing else."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    folded = 0
    for node in list(graph_module.graph.nodes):
        bn = _module(node, modules, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))
        if bn is None or not _bn_foldable(bn) or len(node.args) != 1:
            continue
        producer = node.args[0]
        conv = _module(producer, modules, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
        linear = _module(producer, modules, (nn.Linear,))
        if len(getattr(producer, "users", ())) != 1 or (conv is None and linear is None):
            continue
        if linear is not None and not isinstance(bn, nn.BatchNorm1d):
            continue
        fused = fuse_conv_bn_eval(conv, bn) if conv is not None else fuse_linear_bn_eval(linear, bn)
        _set_module(graph_module, modules, producer.target, fused)
        node.replace_all_uses_with(producer)
        graph_module.graph.erase_node(node)
        folded += 1
    return folded


def _set_module(graph_module: Any, modules: dict[str, Any], target: str, new: Any) -> None:
    parent_name, _, leaf = target.rpartition(".")
    parent = graph_module.get_submodule(parent_name) if parent_name else graph_module
    setattr(parent, leaf, new)
    modules[target] = new


def _is_add(node: Any) -> bool:
    if node.op == "call_function":
        import torch

        return node.target in (operator.add, torch.add) and len(node.args) == 2 and not node.kwargs
    return (
        node.op == "call_method"
        and node.target == "add"
        and len(node.args) == 2
        and not node.kwargs
    )


@dataclass
class _Branch:
    """One addend as a conv on ``source``: its weight, bias and geometry."""

    node: Any
    source: Any
    weight: Any
    bias: Any
    stride: tuple
    dilation: tuple
    groups: int
    offset: tuple
    """(kernel - 1) // 2 - padding per axis: equal offsets keep the outputs aligned."""


def _merge_one(graph_module: Any, modules: dict[str, Any]) -> bool:
    for node in list(graph_module.graph.nodes):
        if not _is_add(node):
            continue
        left, right = node.args
        a, b = _as_branch(left, right, modules), _as_branch(right, left, modules)
        if a is None or b is None or not _compatible(a, b, node):
            continue
        _replace_with_conv(graph_module, modules, node, a, b)
        return True
    return False


def _as_branch(node: Any, other: Any, modules: dict[str, Any]) -> _Branch | None:
    from torch import nn

    if getattr(node, "op", None) is None:
        return None
    conv = _module(node, modules, (nn.Conv2d,))
    if conv is not None:
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str) or len(node.args) != 1:
            return None
        bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
        offset = tuple(
            d * (k - 1) // 2 - p for k, d, p in zip(conv.kernel_size, conv.dilation, conv.padding)
        )
        if any(k % 2 == 0 for k in conv.kernel_size):
            return None
        return _Branch(
            node, node.args[0], conv.weight, bias, conv.stride, conv.dilation, conv.groups, offset
        )
    return _identity_branch(node, other, modules)


def _identity_branch(node: Any, other: Any, modules: dict[str, Any]) -> _Branch | None:
    """``x`` or ``BatchNorm2d(x)`` beside a conv of ``x``, written as a 1×1 conv."""
    from torch import nn

    partner = _module(other, modules, (nn.Conv2d,))
    if partner is None or partner.in_channels != partner.out_channels:
        return None
    bn = _module(node, modules, (nn.BatchNorm2d,))
    source = node.args[0] if bn is not None and len(node.args) == 1 else node
    if source is not other.args[0] or (bn is not None and not _bn_foldable(bn)):
        return None
    channels, per_group = partner.out_channels, partner.in_channels // partner.groups
    weight = partner.weight.new_zeros(channels, per_group, 1, 1)
    for index in range(channels):
        weight[index, index % per_group, 0, 0] = 1.0
    bias = weight.new_zeros(channels)
    if bn is not None:
        scale = (
            bn.weight / (bn.running_var + bn.eps).sqrt()
            if bn.affine
            else 1 / (bn.running_var + bn.eps).sqrt()
        )
        shift = bn.bias if bn.affine else 0.0
        weight = weight * scale.reshape(-1, 1, 1, 1)
        bias = shift - bn.running_mean * scale
    return _Branch(node, source, weight, bias, (1, 1), partner.dilation, partner.groups, (0, 0))


def _compatible(a: _Branch, b: _Branch, add: Any) -> bool:
    if a.source is not b.source or a.stride != b.stride or a.groups != b.groups:
        return False
    if a.offset != b.offset or a.weight.shape[:2] != b.weight.shape[:2]:
        return False
    if a.dilation != b.dilation and not (_is_1x1(a) or _is_1x1(b)):
        return False
    # Each branch must feed only this sum (an identity ``x`` is used elsewhere by design).
    return all(len(br.node.users) == 1 for br in (a, b) if br.node is not br.source)


def _is_1x1(branch: _Branch) -> bool:
    return tuple(branch.weight.shape[2:]) == (1, 1)


def _replace_with_conv(
    graph_module: Any, modules: dict[str, Any], add: Any, a: _Branch, b: _Branch
) -> None:
    from torch import nn

    big, small = (a, b) if a.weight.shape[2] >= b.weight.shape[2] else (b, a)
    kernel = tuple(big.weight.shape[2:])
    dilation = big.dilation if not _is_1x1(big) else small.dilation
    weight = big.weight + _pad_to(small.weight, kernel)
    padding = tuple(d * (k - 1) // 2 - o for k, d, o in zip(kernel, dilation, big.offset))
    conv = nn.Conv2d(
        weight.shape[1] * big.groups,
        weight.shape[0],
        kernel,
        big.stride,
        padding,
        dilation,
        big.groups,
        bias=True,
    )
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(big.bias + small.bias)
    name = _free_name(graph_module, "reparam")
    graph_module.add_module(name, conv)
    modules[name] = conv
    with graph_module.graph.inserting_after(add):
        new = graph_module.graph.call_module(name, (big.source,))
    add.replace_all_uses_with(new)
    graph_module.graph.erase_node(add)
    for branch in (a, b):
        if branch.node is not branch.source and not branch.node.users:
            graph_module.graph.erase_node(branch.node)


def _pad_to(weight: Any, kernel: tuple) -> Any:
    import torch

    pad_h, pad_w = (kernel[0] - weight.shape[2]) // 2, (kernel[1] - weight.shape[3]) // 2
    return torch.nn.functional.pad(weight, (pad_w, pad_w, pad_h, pad_h))


def _free_name(graph_module: Any, stem: str) -> str:
    index = 0
    while hasattr(graph_module, f"{stem}_{index}"):
        index += 1
    return f"{stem}_{index}"
