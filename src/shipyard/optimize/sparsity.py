"""N:M semi-structured sparsity (2:4): in every group of M consecutive input weights, N stay.

The groups run along the input-channel axis of each conv (per output channel and kernel
position) and along the input features of each linear layer, the layout NVIDIA's sparse tensor
cores expect. Masks are kept during fine-tuning (re-applied after every optimizer step), and the
exported weights are dense tensors holding the zeros.

Where it speeds up: only on sparse tensor cores (Ampere and newer GPUs) through TensorRT with
sparse weights enabled or cuSPARSELt. The CPU runtimes here run the zeros as ordinary
multiplications, so expect the same speed and a smaller compressed file, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.errors import UsageError

SPEEDUP_NOTE = (
    "2:4 sparse weights are exported as dense tensors with zeros: CPU runtimes run them at dense "
    "speed; the speed-up needs sparse tensor cores (TensorRT with sparse weights / cuSPARSELt on "
    "an "
    "Ampere or newer GPU)"
)


@dataclass(frozen=True)
class Pattern:
    keep: int
    group: int

    def __str__(self) -> str:
        return f"{self.keep}:{self.group}"


def parse_pattern(text: str) -> Pattern:
    """``"2:4"`` → ``Pattern(2, 4)``."""
    keep, _, group = text.partition(":")
    if not (keep.isdigit() and group.isdigit()) or not 0 < int(keep) < int(group):
        raise UsageError(f"--sparsity {text!r}: expected N:M with 0 < N < M, e.g. 2:4")
    return Pattern(int(keep), int(group))


def sparse_layers(
    module: Any, pattern: Pattern, protect: list[str] | None = None
) -> dict[str, Any]:
    """Conv and linear layers whose input width is a multiple of the group size, not protected."""
    from torch import nn

    layers = {}
    for name, layer in module.named_modules():
        if not isinstance(layer, (nn.Conv2d, nn.Linear)) or any(
            name == p or name.startswith(p + ".") for p in protect or []
        ):
            continue
        width = layer.weight.shape[1]
        if width % pattern.group == 0:
            layers[name] = layer
    return layers


def make_masks(layers: dict[str, Any], pattern: Pattern) -> dict[str, Any]:
    """Keep the ``pattern.keep`` largest magnitudes in every group of ``pattern.group`` inputs."""
    import torch

    masks = {}
    with torch.no_grad():
        for name, layer in layers.items():
            weight = layer.weight
            grouped = _grouped(weight, pattern.group).abs()
            top = grouped.topk(pattern.keep, dim=-1).indices
            mask = torch.zeros_like(grouped).scatter_(-1, top, 1.0)
            masks[name] = _ungrouped(mask, weight.shape)
    return masks


def apply_masks(layers: dict[str, Any], masks: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, layer in layers.items():
            layer.weight.mul_(masks[name])


def _grouped(weight: Any, group: int) -> Any:
    """[out, in, *k] → [out, *k, in/group, group]: groups along the input axis."""
    moved = weight.movedim(1, -1) if weight.dim() > 2 else weight
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // group, group)


def _ungrouped(mask: Any, shape: Any) -> Any:
    flat = mask.reshape(*mask.shape[:-2], -1)
    return flat.movedim(-1, 1).contiguous() if len(shape) > 2 else flat


def follows_pattern(weight: Any, pattern: Pattern) -> bool:
    """True when every group of the weight has at most ``pattern.keep`` non-zeros."""
    nonzero = (_grouped(weight.detach(), pattern.group) != 0).sum(-1)
    return bool((nonzero <= pattern.keep).all())


def sparse_fraction(layers: dict[str, Any]) -> float:
    total = sum(layer.weight.numel() for layer in layers.values())
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers.values())
    return zeros / max(1, total)
