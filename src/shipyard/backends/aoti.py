"""AOTInductor: a ``torch.export`` program compiled ahead of time to a native library (``.pt2`` package).

The package holds the compiled kernels and the weights. From Python it is loaded with
``torch._inductor.aoti_load_package``; from C++ (libtorch, no Python) with
``torch::inductor::AOTIModelPackageLoader loader("model.pt2"); loader.run(inputs);`` — see
``LIBTORCH_NOTE`` in ``shipyard.convert.aoti``.
"""

from __future__ import annotations

from shipyard.backends.base import Session, ensure_available, require_module
from shipyard.backends.torch_eager import TorchSession
from shipyard.records import Artifact


class AotiBackend:
    name = "aoti"
    formats = ("aoti",)
    package = "torch"

    def available(self) -> tuple[bool, str]:
        return require_module("torch", "torch")

    def load(self, artifact: Artifact, threads: int) -> Session:
        ensure_available(self)
        import torch
        import torch._inductor

        torch.set_num_threads(threads)
        model = torch._inductor.aoti_load_package(str(artifact.path))
        return TorchSession(model, artifact.signature, threads)


BACKEND = AotiBackend()
