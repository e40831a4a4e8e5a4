"""TorchScript: a traced and frozen module, loadable from C++ (libtorch) without Python."""

from __future__ import annotations

from shipyard.backends.base import Session
from shipyard.backends.torch.session import TorchSession
from shipyard.records import Artifact


def load_torchscript(artifact: Artifact, threads: int) -> Session:
    """Load a traced module and freeze it for inference (torch 2.14 cannot read back frozen
    files)."""
    import warnings

    import torch

    from shipyard.convert.torchscript import freeze_for_inference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(artifact.path), map_location="cpu")
    return TorchSession(freeze_for_inference(module), artifact.signature, threads)
