"""ONNX → a TVM library compiled for this CPU (``.so`` with kernels and weights), via Relax.

The target is ``llvm`` with this machine's triple and CPU name (LLVM's ``-mcpu=native`` is
rejected by the wheel's LLVM under its conda triple, so the name is asked for explicitly).
``compile_with_tvm`` uses the default Relax pipeline's schedules (plain loops, which is why
untuned TVM is slow here); ``shipyard.backends.tvm.tune`` tunes them with MetaSchedule first.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipyard.errors import BackendUnavailable, ConversionError
from shipyard.records import Artifact


def host_target(cores: int | None = None) -> dict[str, Any]:
    """The llvm target for the CPU this runs on, as TVM's JSON-style dict (``cores``: default
    all)."""
    from tvm.target import codegen

    return {
        "kind": "llvm",
        "mtriple": codegen.llvm_get_system_triple(),
        "mcpu": codegen.llvm_get_system_cpu(),
        "num-cores": cores or os.cpu_count() or 1,
    }


def compile_with_tvm(onnx: Artifact, path: Path) -> Artifact:
    """Import ``onnx`` with the Relax ONNX frontend, compile it for this CPU, save the library at
    ``path``."""
    need_compiler()
    import tvm

    with tvm_errors(onnx):
        executable = tvm.compile(import_onnx(onnx.path), target=tvm.target.Target(host_target()))
        executable.export_library(str(path))
    return Artifact(path, "tvm", onnx.signature)


def import_onnx(path: Path, shapes: dict[str, list[int]] | None = None):
    """The ONNX model as a Relax module with its weights as constants; ``shapes`` fixes input
    shapes."""
    import onnx as onnx_lib
    from tvm.relax.frontend.onnx import from_onnx

    return from_onnx(onnx_lib.load(str(path)), shape_dict=shapes, keep_params_in_input=False)


def need_compiler() -> None:
    if shutil.which("g++") is None and shutil.which("c++") is None:
        raise BackendUnavailable(
            "TVM needs a C++ compiler to save its library (g++ or c++ on PATH)"
        )


@contextmanager
def tvm_errors(onnx: Artifact) -> Iterator[None]:
    """Turn TVM's own failures while compiling ``onnx`` into one ConversionError sentence."""
    try:
        yield
    except (ConversionError, BackendUnavailable):
        raise
    except Exception as exc:
        text = str(exc).strip()
        raise ConversionError(
            f"TVM could not compile {onnx.path.name}: {type(exc).__name__}: "
            f"{text.splitlines()[-1][:300] if text else ''}"
        ) from exc
