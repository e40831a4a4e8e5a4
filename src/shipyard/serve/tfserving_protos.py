"""TensorFlow Serving's generated protos (``tensorflow-serving-api``), loaded without TensorFlow's
runtime.

The TF Serving protos import TensorFlow's own (``tensorflow.core.framework.tensor_pb2``…), and
importing any module under ``tensorflow`` first runs ``tensorflow/__init__.py``: the whole
runtime, about 6 s and 600 MB here. The ``_pb2`` modules need none of it, so while they load,
``tensorflow`` is a bare package over the installed folder; the real package is put back (or left
to a later ``import tensorflow``) afterwards, and it reuses the same message classes. When
TensorFlow is already imported, nothing is stubbed.

Example::

    >>> from shipyard.serve.tfserving_protos import load_protos
    >>> protos = load_protos()               # doctest: +SKIP
    >>> protos.predict.PredictRequest()      # doctest: +SKIP
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import threading
import types
from dataclasses import dataclass
from typing import Any

from shipyard.errors import ShipyardError

INSTALL_HINT = (
    "pip install --no-deps tensorflow-serving-api beside tensorflow-cpu, or pip install "
    "'shipyard[tfserving]'"
)
_STUB_LOCK = threading.Lock()


class ProtosUnavailable(ShipyardError):
    """TensorFlow Serving's protos cannot be loaded here; the message says why and how to install
    them."""


@dataclass(frozen=True)
class Protos:
    """The generated modules the TF Serving gRPC face uses."""

    predict: Any  # tensorflow_serving.apis.predict_pb2
    metadata: Any  # get_model_metadata_pb2
    status: Any  # get_model_status_pb2
    model: Any  # model_pb2 (ModelSpec)
    prediction_grpc: Any  # prediction_service_pb2_grpc
    model_service_grpc: Any  # model_service_pb2_grpc
    tensor: Any  # tensorflow.core.framework.tensor_pb2
    types: Any  # tensorflow.core.framework.types_pb2


_MODULES = {
    "predict": "tensorflow_serving.apis.predict_pb2",
    "metadata": "tensorflow_serving.apis.get_model_metadata_pb2",
    "status": "tensorflow_serving.apis.get_model_status_pb2",
    "model": "tensorflow_serving.apis.model_pb2",
    "prediction_grpc": "tensorflow_serving.apis.prediction_service_pb2_grpc",
    "model_service_grpc": "tensorflow_serving.apis.model_service_pb2_grpc",
    "tensor": "tensorflow.core.framework.tensor_pb2",
    "types": "tensorflow.core.framework.types_pb2",
}


def status() -> tuple[bool, str]:
    """``(True, version)`` when the TF Serving gRPC API can be served, else ``(False, why and
    how)``."""
    try:
        load_protos()
    except ProtosUnavailable as exc:
        return False, str(exc)
    from importlib.metadata import version

    return True, f"tensorflow-serving-api {version('tensorflow-serving-api')}"


@functools.cache
def load_protos() -> Protos:
    """Import the TF Serving protos once; raises :class:`ProtosUnavailable` saying how to install
    them."""
    for package in ("tensorflow_serving", "tensorflow"):
        if importlib.util.find_spec(package) is None:
            raise ProtosUnavailable(
                f"the TensorFlow Serving gRPC API needs the {package!r} package, which is "
                f"not installed; {INSTALL_HINT}"
            )
    try:
        return _import_all() if "tensorflow" in sys.modules else _import_with_bare_tensorflow()
    except Exception as exc:  # a broken optional extra must not stop the server
        raise ProtosUnavailable(
            f"the TensorFlow Serving protos failed to load ({type(exc).__name__}: {exc}); "
            f"expected tensorflow-serving-api built for this protobuf: {INSTALL_HINT}"
        ) from exc


def _import_all() -> Protos:
    return Protos(**{field: importlib.import_module(name) for field, name in _MODULES.items()})


def _import_with_bare_tensorflow() -> Protos:
    spec = importlib.util.find_spec("tensorflow")
    bare = types.ModuleType(
        "tensorflow", "a bare package over TensorFlow's folder, to import its _pb2 modules"
    )
    bare.__path__ = list(spec.submodule_search_locations or [])
    with _STUB_LOCK:
        sys.modules["tensorflow"] = bare
        try:
            return _import_all()
        finally:
            if sys.modules.get("tensorflow") is bare:
                del sys.modules["tensorflow"]
