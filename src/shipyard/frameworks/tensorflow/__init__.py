"""TensorFlow SavedModels and Keras files: converted with tf2onnx, verified against TensorFlow."""
