"""OpenVINO on the CPU, from OpenVINO IR (``.xml`` + ``.bin``) or ONNX."""

from __future__ import annotations

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Artifact


class OpenVinoSession(Session):
    def __init__(self, artifact: Artifact, threads: int, precision_hint: str = "f32") -> None:
        super().__init__(artifact.signature)
        import openvino as ov

        core = ov.Core()
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            # FP32 artifacts stay FP32: OpenVINO would otherwise pick bf16/fp16 on CPUs that have it.
            "INFERENCE_PRECISION_HINT": precision_hint,
        }
        self._compiled = core.compile_model(core.read_model(str(artifact.path)), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._outputs = list(zip(self._compiled.outputs, artifact.signature.output_names))

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._request.infer(inputs, share_inputs=False)
        return {name: np.array(results[out]) for out, name in self._outputs}
