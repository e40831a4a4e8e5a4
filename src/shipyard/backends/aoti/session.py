"""AOTInductor: a ``torch.export`` program compiled ahead of time to a native library (``.pt2``
package).

The package holds the compiled kernels and the weights. From Python it is loaded with
``torch._inductor.aoti_load_package``; from C++ (libtorch, no Python) with
``torch::inductor::AOTIModelPackageLoader loader("model.pt2"); loader.run(inputs);`` — see
``LIBTORCH_NOTE`` in ``shipyard.backends.aoti.convert``.
"""

from __future__ import annotations

from shipyard.backends.base import Session
from shipyard.backends.torch.session import TorchSession
from shipyard.records import Artifact


def load_aoti(artifact: Artifact, threads: int) -> Session:
    """Load a compiled AOTInductor package and run it like a torch module."""
    import torch
    import torch._inductor

    torch.set_num_threads(threads)
    model = torch._inductor.aoti_load_package(str(artifact.path))
    return TorchSession(model, artifact.signature, threads)
