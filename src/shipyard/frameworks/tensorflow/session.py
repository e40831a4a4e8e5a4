"""A SavedModel's serving signature run by TensorFlow behind the ``Session`` protocol (the reference)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Signature

SERVING_KEY = "serving_default"


def import_tensorflow(threads: int | None = None):
    """TensorFlow with its C++ chatter off and, on first use, ``threads`` for its pools."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads:
        try:  # only possible before the runtime starts; later sessions share the first one's pools
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
    return tf


class TensorFlowSession(Session):
    """Calls the ``serving_default`` signature of a SavedModel with named tensors."""

    def __init__(self, saved_model: Path, signature: Signature, threads: int) -> None:
        super().__init__(signature)
        self._tf = import_tensorflow(threads)
        self._loaded = self._tf.saved_model.load(str(saved_model))  # the signature holds only a weak reference
        self._function = self._loaded.signatures[SERVING_KEY]

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._function(**{name: self._tf.constant(value) for name, value in inputs.items()})
        return {name: outputs[name].numpy() for name in self.signature.output_names}
