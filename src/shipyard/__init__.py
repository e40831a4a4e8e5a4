"""Shipyard: take a trained neural network to production.

    >>> import shipyard
    >>> predictor = shipyard.load("pkg/")                       # doctest: +SKIP
    >>> predictor.run({"image": x})["logits"].shape             # doctest: +SKIP
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
    "load",
]
