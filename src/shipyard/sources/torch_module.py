"""Signatures of in-memory torch modules, found by running them once on an example input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.errors import SourceError
from shipyard.records import Signature, TensorSpec


@dataclass(frozen=True)
class InputHint:
    """What we know of one input before the model is run: name, dtype, one sample's shape."""

    name: str
    dtype: str
    sample_shape: tuple[int, ...]

    def example(self, batch: int = 2) -> np.ndarray:
        shape = (batch, *self.sample_shape)
        if np.dtype(self.dtype).kind in "iu":
            return np.ones(shape, dtype=self.dtype)
        return np.random.default_rng(0).standard_normal(shape).astype(self.dtype)


def describe_module(
    module: Any,
    hints: list[InputHint],
    output_names: list[str] | None = None,
    dynamic_dims: dict[str, dict[int, str]] | None = None,
) -> Signature:
    """Run ``module`` once on example inputs and return its signature (batch axis dynamic)."""
    import torch

    args = [torch.from_numpy(h.example()) for h in hints]
    try:
        with torch.inference_mode():
            result = module.eval()(*args)
    except Exception as exc:
        shapes = {h.name: [2, *h.sample_shape] for h in hints}
        raise SourceError(
            f"the model failed on example inputs {shapes}: {type(exc).__name__}: {exc}"
        ) from exc
    names = output_names or _default_output_names(result)
    outputs = outputs_to_numpy(result, names)
    dynamic_dims = dynamic_dims or {}
    inputs = tuple(_spec(h.name, h.example(), dynamic_dims.get(h.name, {})) for h in hints)
    return Signature(inputs, tuple(_spec(n, outputs[n], dynamic_dims.get(n, {})) for n in names))


def _default_output_names(result: Any) -> list[str]:
    if isinstance(result, dict):
        return list(result)
    if isinstance(result, (tuple, list)):
        return [f"output_{i}" for i in range(len(result))]
    return ["output"]


def _spec(name: str, array: np.ndarray, dynamic: dict[int, str]) -> TensorSpec:
    dims: list[int | str] = ["batch", *array.shape[1:]]
    for axis, label in dynamic.items():
        dims[axis] = label
    return TensorSpec(name, str(array.dtype), tuple(dims))


def outputs_to_numpy(result: Any, names: list[str]) -> dict[str, np.ndarray]:
    """Name a module's outputs (a tensor, a tuple/list of them, or a dict) in signature order."""
    if isinstance(result, dict):
        values = [result[n] for n in names]
    elif isinstance(result, (tuple, list)):
        values = list(result)
    else:
        values = [result]
    return {n: _numpy(v) for n, v in zip(names, values)}


def _numpy(tensor: Any) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if (
        tensor.dtype.is_floating_point and tensor.dtype.itemsize < 4
    ):  # autocast's bf16 out: numpy has no bf16
        tensor = tensor.float()
    return tensor.numpy()
