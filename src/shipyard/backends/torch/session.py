"""PyTorch eager: the baseline every candidate is compared with.

In a build it runs the user's own module. In a package it runs a ``torch.export`` program
(``model.pt2``), which needs neither the user's source code nor pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Artifact, Signature
from shipyard.sources.torch_module import outputs_to_numpy


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


def load_program(artifact: Artifact, threads: int) -> Session:
    """A session on a saved ``torch.export`` program."""
    import torch

    program = torch.export.load(str(artifact.path))
    return TorchSession(program.module(), artifact.signature, threads)
