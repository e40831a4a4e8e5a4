"""ONNX Runtime with TensorRT's execution provider (see ``onnxruntime_cuda``); not yet verified on
hardware."""

from shipyard.backends.onnxruntime_cuda import TENSORRT, OrtGpuBackend

BACKEND = OrtGpuBackend("onnxruntime-trt", TENSORRT)
