"""TensorRT: a serialized engine run on an NVIDIA GPU, with GPU buffers held by PyTorch (CUDA
build).

Written to TensorRT 10's documented API (``Runtime.deserialize_cuda_engine``, named I/O tensors,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``); NOT YET VERIFIED ON GPU
HARDWARE (this project's machine has no GPU and ``tensorrt`` does not install here).
"""

from __future__ import annotations

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Artifact


class TensorRtSession(Session):
    def __init__(self, artifact: Artifact) -> None:
        super().__init__(artifact.signature)
        import tensorrt as trt
        import torch

        self._trt, self._torch = trt, torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._engine = trt.Runtime(self._logger).deserialize_cuda_engine(artifact.path.read_bytes())
        self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream()

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch, trt, context = self._torch, self._trt, self._context
        held = {}
        for name in self.signature.input_names:
            held[name] = torch.from_numpy(np.ascontiguousarray(inputs[name])).cuda()
            context.set_input_shape(name, tuple(held[name].shape))
            context.set_tensor_address(name, held[name].data_ptr())
        for name in self.signature.output_names:
            dtype = torch.from_numpy(
                np.empty(0, trt.nptype(self._engine.get_tensor_dtype(name)))
            ).dtype
            held[name] = torch.empty(
                tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda"
            )
            context.set_tensor_address(name, held[name].data_ptr())
        if not context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError("TensorRT failed to run the engine")
        self._stream.synchronize()
        return {name: held[name].cpu().numpy() for name in self.signature.output_names}
