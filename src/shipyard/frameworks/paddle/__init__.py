"""PaddlePaddle inference models: converted with paddle2onnx, verified against Paddle Inference."""
