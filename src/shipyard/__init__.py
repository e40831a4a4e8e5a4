"""Shipyard: take a trained neural network to production.

>>> import shipyard
>>> result = shipyard.build("example:digits", max_drop=1, out="pkg/")   # doctest: +SKIP
>>> result.chosen.key                                                  # doctest: +SKIP
'onnxruntime/fp32'
>>> predictor = shipyard.load("pkg/")                                  # doctest: +SKIP
>>> predictor.run({"image": x})["logits"].shape                        # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from shipyard.errors import (
    BackendUnavailable,
    ConversionError,
    DataError,
    PackageError,
    ShipyardError,
    SourceError,
    UsageError,
)
from shipyard.predictor import Predictor, load


def build(model: str, **settings):
    """Take ``model`` down the whole road and return the ``BuildResult``; writes a package when
    ``out`` is given.

    ``model`` is any MODEL form of ``shipyard build`` (``file.onnx``, ``file.py:function``,
    ``hf:DIR``, ``example:NAME``…); ``settings`` are the command's options by their Python names
    (``weights``, ``data``, ``max_drop``, ``backends``, ``precisions``, ``out``, ``force``, …), see
    ``shipyard.pipeline.options``. ``reporter=`` takes an object with
    ``stage``/``note``/``candidate``.
    """
    from shipyard.pipeline.build import build_model

    return build_model(model, **settings)


__all__ = [
    "BackendUnavailable",
    "ConversionError",
    "DataError",
    "PackageError",
    "Predictor",
    "ShipyardError",
    "SourceError",
    "UsageError",
    "__version__",
    "build",
    "load",
]
