"""MNN (Alibaba) on the CPU, from an ``.mnn`` model converted from ONNX.

FP32 artifacts run with MNN's ``high`` precision; ``low`` lets MNN use FP16 arithmetic on CPUs
that have it (ARMv8.2; on x86 MNN reports ``fp16:0`` and stays in FP32).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Artifact


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence C-level prints on fd 1 (MNN announces the CPU's features when it is imported)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def import_mnn() -> Any:
    with quiet_stdout():
        import MNN
        import MNN.expr
        import MNN.nn
    return MNN


class MnnSession(Session):
    def __init__(self, artifact: Artifact, threads: int, precision: str = "high") -> None:
        super().__init__(artifact.signature)
        mnn = import_mnn()
        self._expr = mnn.expr
        with quiet_stdout():
            runtime = mnn.nn.create_runtime_manager(
                ({"backend": "CPU", "precision": precision, "numThread": threads},)
            )
            self._module = mnn.nn.load_module_from_file(
                str(artifact.path),
                artifact.signature.input_names,
                artifact.signature.output_names,
                runtime_manager=runtime,
            )

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        expr = self._expr
        feed = [self._constant(inputs[n]) for n in self.signature.input_names]
        outputs = self._module.forward(feed)
        result = {}
        for name, value in zip(self.signature.output_names, outputs):
            if value.data_format == expr.NC4HW4:
                value = expr.convert(value, expr.NCHW)
            result[name] = np.array(value.read(), copy=True)
        return result

    def _constant(self, array: np.ndarray) -> Any:
        expr = self._expr
        if array.dtype.kind in "iub":
            return expr.const(
                np.ascontiguousarray(array, np.int32), list(array.shape), expr.NCHW, expr.int
            )
        return expr.const(np.ascontiguousarray(array, np.float32), list(array.shape), expr.NCHW)
