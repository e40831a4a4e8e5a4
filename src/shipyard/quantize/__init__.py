"""Quantisation tools the backends share: the calibration set, layer-by-layer comparison, the
artifact cache.

    calibration.py    the calibration subset, and warnings when it is too small or unlike the
    evaluation data
    layerwise.py      where a quantised model's tensors part from the original's (ONNX graphs; each
    backend
                      exposes its own tensors in ``backends/<name>/layers.py``)
    cache.py          quantised and tuned artifacts cached by content hash + recipe + data + code
    digest

Each runtime's own quantisers (ONNX Runtime QDQ/dynamic/FP16, NNCF, ncnn INT8) live in its backend
folder; the ``quantize`` recipe step (``shipyard.workshop``) asks the backend that owns a method.
The
accuracy-aware search over quantised candidates is ``shipyard.search``.
Nothing here imports onnx, onnxruntime, openvino or nncf at module level.
"""
