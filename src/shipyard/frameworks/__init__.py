"""The frameworks models are converted from, run as themselves: the reference for a converted
source.

A source loaded from Paddle, TensorFlow or Caffe (``shipyard.sources.paddle``, ``.tensorflow``,
``.caffe``) is an ONNX file plus a ``FrameworkReference``; the build asks ``reference_session`` for
the session that gives every candidate's yardstick and the baseline's timing:

    paddle.py       Paddle Inference's predictor on the program and parameters
    tensorflow.py   the SavedModel's serving signature in TensorFlow
    caffe.py        caffe-onnx's graph, checked layer by layer when loaded, on ONNX Runtime

Each module imports its framework only when a session is opened.
"""

from __future__ import annotations

import importlib

from shipyard.backends.base import Session
from shipyard.errors import SourceError
from shipyard.sources.base import Source

_MODULES = {
    "paddle": "shipyard.frameworks.paddle",
    "tensorflow": "shipyard.frameworks.tensorflow",
    "caffe": "shipyard.frameworks.caffe",
}


def reference_session(source: Source, threads: int) -> Session:
    """The session that runs ``source`` in the framework it came from."""
    reference = source.reference
    if reference is None or reference.framework not in _MODULES:
        raise SourceError(
            f"{source.name} has no framework reference; expected one of {sorted(_MODULES)}"
        )
    module = importlib.import_module(_MODULES[reference.framework])
    return module.open_session(reference, source.signature, threads)


__all__ = ["reference_session"]
