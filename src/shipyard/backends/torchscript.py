"""TorchScript: a traced and frozen module, loadable from C++ (libtorch) without Python."""

from __future__ import annotations

from shipyard.backends.base import Session, ensure_available, require_module
from shipyard.backends.torch_eager import TorchSession
from shipyard.records import Artifact


class TorchScriptBackend:
    name = "torchscript"
    formats = ("torchscript",)

    def available(self) -> tuple[bool, str]:
        return require_module("torch", "torch")

    def load(self, artifact: Artifact, threads: int) -> Session:
        ensure_available(self)
        import warnings

        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(artifact.path), map_location="cpu")
        from shipyard.convert.torchscript import freeze_for_inference

        return TorchSession(freeze_for_inference(module), artifact.signature, threads)


BACKEND = TorchScriptBackend()
