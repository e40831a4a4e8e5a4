"""PyTorch eager: the baseline every candidate is compared with.

In a build it runs the user's own module. In a package it runs a ``torch.export`` program
(``model.pt2``), which needs neither the user's source code nor pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.backends.base import Session
from shipyard.errors import UsageError
from shipyard.records import Artifact, Signature
from shipyard.sources.torch_module import outputs_to_numpy

AUTOCAST = ("bf16",)
"""Lower precisions a torch session can run its module in by ``torch.autocast``."""


class TorchSession(Session):
    """Runs a callable torch module on numpy feeds, in inference mode (under autocast if asked)."""

    def __init__(
        self, module: Any, signature: Signature, threads: int, autocast: str | None = None
    ) -> None:
        super().__init__(signature)
        import torch

        if autocast is not None and autocast not in AUTOCAST:
            raise UsageError(
                f"torch autocast {autocast!r}; expected one of {', '.join(AUTOCAST)} or none"
            )
        torch.set_num_threads(threads)
        self._torch = torch
        self._module = module
        self._autocast = autocast

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [
            torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.signature.input_names
        ]
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._autocast == "bf16"),
        ):
            result = self._module(*args)
        return outputs_to_numpy(result, self.signature.output_names)


def load_program(artifact: Artifact, threads: int, autocast: str | None = None) -> Session:
    """A session on a saved ``torch.export`` program."""
    import torch

    program = torch.export.load(str(artifact.path))
    return TorchSession(program.module(), artifact.signature, threads, autocast)
