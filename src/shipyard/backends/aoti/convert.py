"""``torch.export`` program → AOTInductor package (``.pt2``): kernels compiled ahead of time for
this CPU.

Compiling runs Inductor and a C++ compiler (about half a minute for a small CNN on 2 cores).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shipyard.errors import BackendUnavailable, ConversionError
from shipyard.records import Artifact

LIBTORCH_NOTE = {
    "torchscript": (
        'C++ without Python: link libtorch and call torch::jit::load("model/model.ts") '
        "then module.forward({torch::Tensor...}); the inputs/outputs are listed in this manifest."
    ),
    "aoti": (
        "C++ without Python: link libtorch (same version as the build's torch) and use "
        'torch::inductor::AOTIModelPackageLoader loader("model/model.pt2"); '
        "std::vector<at::Tensor> out = loader.run({inputs...}); (#include "
        "<torch/csrc/inductor/aoti_package/model_package_loader.h>). Compiled for this CPU."
    ),
}
"""How a package of a libtorch format is loaded from C++; written into the manifest's notes."""


def compile_aoti(program: Artifact, path: Path) -> Artifact:
    if shutil.which("g++") is None and shutil.which("c++") is None:
        raise BackendUnavailable("AOTInductor needs a C++ compiler (g++ or c++ on PATH)")
    import torch
    import torch._inductor

    try:
        exported = torch.export.load(str(program.path))
        torch._inductor.aoti_compile_and_package(exported, package_path=str(path))
    except Exception as exc:
        raise ConversionError(
            f"AOTInductor could not compile {program.path.name}: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return Artifact(path, "aoti", program.signature)
