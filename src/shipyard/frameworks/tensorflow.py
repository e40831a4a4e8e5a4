"""A SavedModel's serving signature run by TensorFlow behind the ``Session`` protocol (the
reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Signature
from shipyard.sources.base import FrameworkReference
from shipyard.sources.tensorflow import SERVING_KEY, import_tensorflow


class TensorFlowSession(Session):
    """Calls the ``serving_default`` signature of a SavedModel with named tensors."""

    def __init__(self, saved_model: Path, signature: Signature, threads: int) -> None:
        super().__init__(signature)
        self._tf = import_tensorflow(threads)
        self._loaded = self._tf.saved_model.load(
            str(saved_model)
        )  # the signature holds only a weak reference
        self._function = self._loaded.signatures[SERVING_KEY]

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._function(
            **{name: self._tf.constant(value) for name, value in inputs.items()}
        )
        return {name: outputs[name].numpy() for name in self.signature.output_names}


def open_session(
    reference: FrameworkReference, signature: Signature, threads: int
) -> TensorFlowSession:
    (saved_model,) = reference.files
    return TensorFlowSession(saved_model, signature, threads)
