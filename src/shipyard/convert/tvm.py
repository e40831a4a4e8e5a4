"""ONNX → a TVM library compiled for this CPU (``.so`` with kernels and weights), via Relax.

The target is ``llvm`` with this machine's triple and CPU name (LLVM's ``-mcpu=native`` is
rejected by the wheel's LLVM under its conda triple, so the name is asked for explicitly). No
auto-tuning: the default Relax pipeline's schedules are used, which is why TVM is usually slower
than ONNX Runtime here — see docs/benchmarks.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from shipyard.errors import BackendUnavailable, ConversionError
from shipyard.records import Artifact


def host_target() -> dict[str, Any]:
    """The llvm target for the CPU this runs on, as TVM's JSON-style dict."""
    from tvm.target import codegen

    return {"kind": "llvm", "mtriple": codegen.llvm_get_system_triple(),
            "mcpu": codegen.llvm_get_system_cpu(), "num-cores": os.cpu_count() or 1}


def compile_with_tvm(onnx: Artifact, path: Path) -> Artifact:
    """Import ``onnx`` with the Relax ONNX frontend, compile it for this CPU, save the library at ``path``."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        raise BackendUnavailable("TVM needs a C++ compiler to save its library (g++ or c++ on PATH)")
    import onnx as onnx_lib
    import tvm
    from tvm.relax.frontend.onnx import from_onnx

    try:
        module = from_onnx(onnx_lib.load(str(onnx.path)), keep_params_in_input=False)
        executable = tvm.compile(module, target=tvm.target.Target(host_target()))
        executable.export_library(str(path))
    except Exception as exc:
        raise ConversionError(f"TVM could not compile {onnx.path.name}: {type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ''}") from exc
    return Artifact(path, "tvm", onnx.signature)
