"""The backend plug-in protocol.

A backend is one module ``shipyard/backends/<name>.py`` exposing a ``BACKEND`` object with:

    name: str                      the name users type (``--backends onnxruntime``)
    formats: tuple[str, ...]       the artifact formats it loads
    available() -> (bool, reason)  cheap; never raises when the runtime is missing
    load(artifact, threads) -> Session

Example::

    >>> from shipyard.backends import get_backend
    >>> ort = get_backend("onnxruntime")
    >>> ok, why = ort.available()
    >>> session = ort.load(artifact, threads=2)          # doctest: +SKIP
    >>> session.run({"image": x})["logits"].shape        # doctest: +SKIP

``Session.run`` validates the feed against the signature, then calls ``_run_impl``; a backend
overrides only ``_run_impl``.
"""

from __future__ import annotations

import importlib.util
from typing import Protocol

import numpy as np

from shipyard.errors import BackendUnavailable, DataError
from shipyard.records import Artifact, Signature, numpy_dtype


class Session:
    """A loaded model ready to run. Subclasses implement ``_run_impl``."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on a feed of named numpy arrays; returns named numpy arrays."""
        return self._run_impl(check_feed(self.signature, inputs))

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the runtime's resources; the default does nothing."""


class Backend(Protocol):
    name: str
    formats: tuple[str, ...]

    def available(self) -> tuple[bool, str]: ...

    def load(self, artifact: Artifact, threads: int) -> Session: ...


def check_feed(signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check names, ranks, fixed dims and dtypes of a feed; cast numeric arrays when safe."""
    expected = signature.input_names
    missing = [n for n in expected if n not in inputs]
    unknown = [n for n in inputs if n not in expected]
    if missing or unknown:
        raise DataError(f"inputs {sorted(inputs)} do not match the model: expected {expected}"
                        + (f"; missing {missing}" if missing else "")
                        + (f"; unknown {unknown}" if unknown else ""))
    return {spec.name: _check_tensor(spec, inputs[spec.name]) for spec in signature.inputs}


def _check_tensor(spec, value: np.ndarray) -> np.ndarray:
    array = np.asarray(value)
    if len(array.shape) != len(spec.shape):
        raise DataError(f"input {spec.name!r} has shape {list(array.shape)}; expected "
                        f"{len(spec.shape)} dimensions like {spec.kserve_shape} (-1 = any size)")
    for axis, (got, want) in enumerate(zip(array.shape, spec.shape)):
        if isinstance(want, int) and got != want:
            raise DataError(f"input {spec.name!r} has size {got} on axis {axis}; expected {want} "
                            f"(shape {spec.kserve_shape})")
    want_dtype = numpy_dtype(spec.dtype)
    if array.dtype == want_dtype:
        return array
    if spec.dtype == "bytes" or array.dtype.kind not in "biuf":
        raise DataError(f"input {spec.name!r} has dtype {array.dtype}; expected {spec.dtype}")
    if array.dtype.kind == "f" and want_dtype.kind in "iu":
        raise DataError(f"input {spec.name!r} has float dtype {array.dtype}; expected integers ({spec.dtype})")
    return array.astype(want_dtype)


def require_module(module: str, pip_name: str) -> tuple[bool, str]:
    """(True, "") when ``module`` can be imported, else (False, how to install it)."""
    if importlib.util.find_spec(module) is None:
        return False, f"not available: pip install {pip_name}"
    return True, ""


def ensure_available(backend: Backend) -> None:
    ok, why = backend.available()
    if not ok:
        raise BackendUnavailable(f"backend {backend.name!r} is {why}")
