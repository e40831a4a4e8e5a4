"""Quantisation under an accuracy budget: FP16, INT8 post-training quantisation, mixed precision.

    plan.py           which FP16 / INT8 candidates a build tries on each backend
    steps.py          the ``quantize`` recipe step (dispatches to the modules below, cached)
    ort_int8.py       ONNX Runtime: static QDQ (MinMax/Entropy/Percentile) and dynamic INT8
    openvino_int8.py  OpenVINO: NNCF post-training quantisation and weight-only compression
    accuracy_control.py  OpenVINO: nncf.quantize_with_accuracy_control on held-out calibration samples
    fp16.py           ONNX FP16 with FP32 inputs/outputs
    calibration.py    the calibration subset, and warnings when it is too small or unlike the evaluation data
    layerwise.py      per-layer comparison of a quantised model with the original (ORT and OpenVINO)
    fallback.py       the accuracy-aware search: keep the guilty layers in FP32 until the budget holds
    cache.py          quantised artifacts cached by content hash + recipe + calibration data

Nothing here imports onnx, onnxruntime, openvino or nncf at module level.
"""
