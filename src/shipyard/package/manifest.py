"""A package's ``manifest.json``: its name, what it runs, its files and signature. The read side.

The packager (``shipyard.package.writer``) writes it; ``shipyard.load``, the server and the
exporters read it here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.records import Signature, TensorSpec
from shipyard.text import TEXT_INPUT

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the package in ``folder``: validated, every file checked against its digest.

    See :mod:`shipyard.package.trust` for what is checked.
    """
    from shipyard.package.trust import load_manifest

    return load_manifest(Path(folder))


def public_signature(model: Signature, text: dict[str, Any] | None) -> Signature:
    """What a client sends and gets: text packages take ``text`` BYTES instead of token tensors."""
    if text is None:
        return model
    return Signature((TensorSpec(TEXT_INPUT, "bytes", ("batch",)),), model.outputs)
