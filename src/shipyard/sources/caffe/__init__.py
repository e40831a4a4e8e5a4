"""Caffe nets (prototxt + caffemodel): converted by caffe-onnx in a child process, checked layer by
layer."""
