"""Models from other frameworks: each converted to ONNX, each verified against its own framework.

One folder per framework, each with its ``source`` (find the files, convert, signature, hash) and
its ``session`` (the framework's own runtime behind the ``Session`` protocol, which gives the build
its reference outputs and baseline):

    paddle/       paddle:DIR, file.pdmodel   paddle2onnx; Paddle Inference's predictor as reference
    tensorflow/   tf:DIR, file.keras         tf2onnx; the SavedModel's serving signature as reference
    caffe/        caffe:NET:WEIGHTS          caffe-onnx (in a child process); its graph checked layer by layer

Nothing here is imported until a model of that kind is loaded.
"""

from __future__ import annotations

from shipyard.frameworks.extras import FRAMEWORK_EXTRAS, FrameworkStatus, framework_statuses

__all__ = ["FRAMEWORK_EXTRAS", "FrameworkStatus", "framework_statuses"]
