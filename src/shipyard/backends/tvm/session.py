"""Apache TVM (Relax) on the CPU: a library compiled ahead of time for this CPU, run by the Relax
VM.

The compiled ``.so`` holds the kernels and the weights; loading it needs the ``apache-tvm``
runtime but no compiler. It is compiled for the CPU it was built on (``llvm -mcpu=<host>``).
A tuned library is compiled for batch 1 (MetaSchedule tunes static shapes); the ``model.json``
beside it says so, and the session then runs a batch sample by sample.
"""

from __future__ import annotations

import json
import os

import numpy as np

from shipyard.backends.base import Session
from shipyard.errors import PackageError
from shipyard.records import Artifact


class TvmSession(Session):
    def __init__(self, artifact: Artifact, threads: int) -> None:
        super().__init__(artifact.signature)
        import tvm
        from tvm import relax

        # TVM sizes its pool from TVM_NUM_THREADS whenever it is configured; configuring without it
        # ran
        # 2-3x slower here (its workers ended up sharing one core), so the variable is set first.
        os.environ["TVM_NUM_THREADS"] = str(threads)
        configure = tvm.get_global_func("runtime.config_threadpool", True)
        if configure is not None:
            configure(1, threads)  # mode 1 = "big" cores: all of them on x86
        self._tvm = tvm
        self._device = tvm.cpu()
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(artifact.path)), self._device)
        self._main = self._vm["main"]
        self._static_batch = static_batch(artifact)

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._static_batch != 1:
            return self._run_once(inputs)
        batched = [spec.name for spec in self.signature.inputs if spec.batched]
        size = len(inputs[batched[0]]) if batched else 1
        rows = [
            self._run_once({n: v[i : i + 1] if n in batched else v for n, v in inputs.items()})
            for i in range(size)
        ]
        return {
            name: np.concatenate([row[name] for row in rows])
            for name in self.signature.output_names
        }

    def _run_once(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensor = self._tvm.runtime.tensor
        args = [
            tensor(np.ascontiguousarray(inputs[n]), self._device)
            for n in self.signature.input_names
        ]
        result = self._main(*args)
        values = [result] if hasattr(result, "numpy") else list(result)
        return {name: value.numpy() for name, value in zip(self.signature.output_names, values)}


def static_batch(artifact: Artifact) -> int | None:
    """The batch size the library was compiled for, from ``model.json`` beside it (None: any batch
    size)."""
    sidecar = artifact.path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        return json.loads(sidecar.read_text()).get("static_batch")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise PackageError(
            f"{sidecar} is not the TVM library's JSON note; expected an object such as "
            '{"static_batch": 1}'
        ) from exc
