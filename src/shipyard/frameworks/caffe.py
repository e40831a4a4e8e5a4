"""Caffe's reference: caffe-onnx's graph on ONNX Runtime, once ``sources.caffe`` has checked it
layer by layer.

No Caffe runtime installs here; see ``shipyard.sources.caffe.source``.
"""

from __future__ import annotations

from shipyard.backends import get_backend
from shipyard.backends.base import Session
from shipyard.records import Artifact, Signature
from shipyard.sources.base import FrameworkReference


def open_session(reference: FrameworkReference, signature: Signature, threads: int) -> Session:
    (onnx_file,) = reference.files
    return get_backend("onnxruntime").load(Artifact(onnx_file, "onnx", signature), threads)
