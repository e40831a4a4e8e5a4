"""Shipyard's exceptions.

    ShipyardError                 every error we raise on purpose; the CLI prints its message
    ├── UsageError                a nonsense option value or argument
    ├── SourceError               the model the user handed us cannot be loaded
    ├── DataError                 the data does not fit the model
    ├── ConversionError           an export or optimisation step failed
    ├── BackendUnavailable        a runtime is not installed or cannot run here
    └── PackageError              a package directory is missing or damaged

Third-party errors are wrapped at the boundary with ``raise XError(msg) from exc`` and every
message says what failed, the value seen and what was expected.
"""

from __future__ import annotations


class ShipyardError(Exception):
    """Root of every error Shipyard raises on purpose."""


class UsageError(ShipyardError):
    """An argument or option has a value we cannot use."""


class SourceError(ShipyardError):
    """The model handed to us cannot be loaded."""


class DataError(ShipyardError):
    """The data set does not fit the model or cannot be read."""


class ConversionError(ShipyardError):
    """An export, optimisation or quantisation step failed."""


class BackendUnavailable(ShipyardError):
    """A runtime is missing or cannot run on this machine."""


class PackageError(ShipyardError):
    """A package directory is missing, incomplete or damaged."""
