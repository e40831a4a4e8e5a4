"""OpenVINO on the CPU, from OpenVINO IR (``.xml`` + ``.bin``) or ONNX."""

from __future__ import annotations

import numpy as np

from shipyard.backends.base import Session
from shipyard.errors import UsageError
from shipyard.records import Artifact

PRECISION_HINTS = ("f32", "bf16", "f16")
"""OpenVINO's ``INFERENCE_PRECISION_HINT`` values a candidate may ask for."""


class OpenVinoSession(Session):
    def __init__(self, artifact: Artifact, threads: int, precision_hint: str = "f32") -> None:
        super().__init__(artifact.signature)
        import openvino as ov

        if precision_hint not in PRECISION_HINTS:
            raise UsageError(
                f"OpenVINO inference precision {precision_hint!r}; expected one of "
                f"{', '.join(PRECISION_HINTS)}"
            )

        core = ov.Core()
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            # FP32 artifacts stay FP32: OpenVINO would otherwise pick bf16/fp16 on CPUs that have
            # it.
            "INFERENCE_PRECISION_HINT": precision_hint,
        }
        self._compiled = core.compile_model(core.read_model(str(artifact.path)), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._outputs = list(zip(self._compiled.outputs, artifact.signature.output_names))

    @property
    def inference_precision(self) -> str:
        """The precision OpenVINO compiled the model to run in (``f32``, ``bf16``, ``f16``)."""
        return self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._request.infer(inputs, share_inputs=False)
        return {name: np.array(results[out]) for out, name in self._outputs}
