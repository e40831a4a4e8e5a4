"""Paddle Inference's own predictor behind the ``Session`` protocol: the reference for a Paddle
model."""

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

    def __init__(
        self, model_file: Path, params_file: Path, signature: Signature, threads: int
    ) -> None:
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
            raise SourceError(
                f"Paddle Inference cannot load {model_file}: {str(error)[:300]} {log_tail(log)}"
            ) from error
        self._predictor = predictor
        self._inputs = _paired(
            "input", signature.input_names, predictor.get_input_names(), model_file
        )
        self._outputs = _paired(
            "output", signature.output_names, predictor.get_output_names(), model_file
        )

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in inputs.items():
            handle = self._predictor.get_input_handle(self._inputs[name])
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(np.ascontiguousarray(value))
        self._predictor.run()
        return {
            name: self._predictor.get_output_handle(paddle_name).copy_to_cpu()
            for name, paddle_name in self._outputs.items()
        }


def _paired(
    kind: str, onnx_names: list[str], paddle_names: list[str], model_file: Path
) -> dict[str, str]:
    """The converted graph's name → Paddle's, by name, else by position.

    paddle2onnx renames the fetch targets of older ``.pdmodel`` programs (``linear_0.tmp_1`` becomes
    ``fetch_name_0``) but keeps their order; a wrong pairing would show as a failed verification.
    """
    if sorted(onnx_names) == sorted(paddle_names):
        return {name: name for name in onnx_names}
    if len(onnx_names) != len(paddle_names):
        raise SourceError(
            f"{model_file}: Paddle's {kind}s {paddle_names} do not match the converted ONNX "
            f"{kind}s {onnx_names}; expected as many, in the same order"
        )
    return dict(zip(onnx_names, paddle_names))


def open_session(
    reference: FrameworkReference, signature: Signature, threads: int
) -> PaddleSession:
    model_file, params_file = reference.files
    return PaddleSession(model_file, params_file, signature, threads)
