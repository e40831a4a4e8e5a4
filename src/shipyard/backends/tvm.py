"""Apache TVM (Relax) on the CPU: a library compiled ahead of time for this CPU, run by the Relax VM.

The compiled ``.so`` holds the kernels and the weights; loading it needs the ``apache-tvm``
runtime but no compiler. It is compiled for the CPU it was built on (``llvm -mcpu=<host>``).
"""

from __future__ import annotations

import numpy as np

from shipyard.backends.base import Session, ensure_available, require_module
from shipyard.records import Artifact


class TvmSession(Session):
    def __init__(self, artifact: Artifact, threads: int) -> None:
        super().__init__(artifact.signature)
        import tvm
        from tvm import relax

        configure = tvm.get_global_func("runtime.config_threadpool", True)
        if configure is not None:
            configure(1, threads)  # mode 1 = "big" cores: all of them on x86
        self._tvm = tvm
        self._device = tvm.cpu()
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(artifact.path)), self._device)
        self._main = self._vm["main"]

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensor = self._tvm.runtime.tensor
        args = [tensor(np.ascontiguousarray(inputs[n]), self._device) for n in self.signature.input_names]
        result = self._main(*args)
        values = [result] if hasattr(result, "numpy") else list(result)
        return {name: value.numpy() for name, value in zip(self.signature.output_names, values)}


class TvmBackend:
    name = "tvm"
    formats = ("tvm",)
    package = "apache-tvm"

    def available(self) -> tuple[bool, str]:
        return require_module("tvm", "apache-tvm")

    def load(self, artifact: Artifact, threads: int) -> Session:
        ensure_available(self)
        return TvmSession(artifact, threads)


BACKEND = TvmBackend()
