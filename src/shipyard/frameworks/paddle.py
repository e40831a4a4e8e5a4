"""Paddle Inference's own predictor behind the ``Session`` protocol: the reference for a Paddle model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shipyard.backends.base import Session
from shipyard.errors import SourceError
from shipyard.records import Signature
from shipyard.sources.base import FrameworkReference
from shipyard.sources.conversion import captured_output, log_tail


class PaddleSession(Session):
    """Runs ``model.json``/``.pdmodel`` + ``.pdiparams`` in ``paddle.inference`` on the CPU."""

    def __init__(self, model_file: Path, params_file: Path, signature: Signature, threads: int) -> None:
        super().__init__(signature)
        from paddle import inference

        config = inference.Config(str(model_file), str(params_file))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        predictor, error = None, None
        with captured_output() as log:  # the predictor prints its graph passes straight to fd 2
            try:
                predictor = inference.create_predictor(config)
            except Exception as exc:  # Paddle raises its own C++ error types
                error = exc
        if predictor is None:
            raise SourceError(f"Paddle Inference cannot load {model_file}: {str(error)[:300]} {log_tail(log)}") from error
        self._predictor = predictor
        _check_names("output", self._predictor.get_output_names(), signature.output_names, model_file)
        _check_names("input", self._predictor.get_input_names(), signature.input_names, model_file)

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in inputs.items():
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(np.ascontiguousarray(value))
        self._predictor.run()
        return {name: self._predictor.get_output_handle(name).copy_to_cpu() for name in self.signature.output_names}


def _check_names(kind: str, paddle_names: list[str], onnx_names: list[str], model_file: Path) -> None:
    # the reference and the converted graph are matched by name; a mismatch would compare the wrong tensors
    if sorted(paddle_names) != sorted(onnx_names):
        raise SourceError(f"{model_file}: Paddle's {kind}s {paddle_names} do not match the converted ONNX "
                          f"{kind}s {onnx_names}; expected paddle2onnx to keep the names")


def open_session(reference: FrameworkReference, signature: Signature, threads: int) -> PaddleSession:
    model_file, params_file = reference.files
    return PaddleSession(model_file, params_file, signature, threads)
