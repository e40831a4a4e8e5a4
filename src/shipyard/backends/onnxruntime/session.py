"""ONNX Runtime on the CPU."""

from __future__ import annotations

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Artifact


class OnnxRuntimeSession(Session):
    def __init__(self, artifact: Artifact, threads: int, spin: bool = True) -> None:
        super().__init__(artifact.signature)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if not spin:  # the intra-op pool's idle threads would take the cores from a front end
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(artifact.path), options, providers=["CPUExecutionProvider"]
        )
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(self._outputs, inputs)
        return dict(zip(self._outputs, values))
