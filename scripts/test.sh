#!/usr/bin/env bash
# Install Shipyard with every CPU runtime and the test tools, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[all,test]" "torch==2.14.1" "torchvision==0.29.1"
# TF Serving's gRPC protos without the `tensorflow` they pin (tensorflow-cpu provides TensorFlow's protos)
python -m pip install -q --no-deps "tensorflow-serving-api==2.21.0"
python -m pytest -q "$@"
