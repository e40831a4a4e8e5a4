"""ONNX Runtime with TensorRT's execution provider (see ``onnxruntime_gpu``); not yet verified on hardware."""

from shipyard.backends.onnxruntime_gpu import TENSORRT, OrtGpuBackend

BACKEND = OrtGpuBackend("onnxruntime-trt", TENSORRT)
