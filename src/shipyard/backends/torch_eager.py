"""PyTorch eager: the baseline every candidate is compared with.

In a build it runs the user's own module. In a package it runs a ``torch.export`` program
(``model.pt2``), which needs neither the user's source code nor pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.backends.base import Session, ensure_available, require_module
from shipyard.records import Artifact, Signature


class TorchSession(Session):
    """Runs a callable torch module on numpy feeds, in inference mode."""

    def __init__(self, module: Any, signature: Signature, threads: int) -> None:
        super().__init__(signature)
        import torch

        torch.set_num_threads(threads)
        self._torch = torch
        self._module = module

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.signature.input_names]
        with torch.inference_mode():
            result = self._module(*args)
        return outputs_to_numpy(result, self.signature.output_names)


def outputs_to_numpy(result: Any, names: list[str]) -> dict[str, np.ndarray]:
    """Name a module's outputs (a tensor, a tuple/list of them, or a dict) in signature order."""
    if isinstance(result, dict):
        values = [result[n] for n in names]
    elif isinstance(result, (tuple, list)):
        values = list(result)
    else:
        values = [result]
    return {n: v.detach().cpu().numpy() for n, v in zip(names, values)}


class TorchBackend:
    name = "torch"
    formats = ("torch-export",)

    def available(self) -> tuple[bool, str]:
        return require_module("torch", "torch")

    def load(self, artifact: Artifact, threads: int) -> Session:
        ensure_available(self)
        import torch

        program = torch.export.load(str(artifact.path))
        return TorchSession(program.module(), artifact.signature, threads)

    def session_for_module(self, module: Any, signature: Signature, threads: int) -> Session:
        """A session on an in-memory module (the build's baseline)."""
        ensure_available(self)
        return TorchSession(module.eval(), signature, threads)


BACKEND = TorchBackend()
