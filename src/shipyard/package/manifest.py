"""A package's ``manifest.json``: its name, what it runs, its files and signature. The read side.

The packager (``shipyard.package.writer``) writes it; ``shipyard.load``, the server and the
exporters read it here and nowhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.errors import PackageError
from shipyard.records import Signature, TensorSpec
from shipyard.text import TEXT_INPUT

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the package in ``folder``, checked for the fields every reader needs."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise PackageError(f"{folder} is not a Shipyard package: no {MANIFEST} in it")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PackageError(f"{path} is not valid JSON: {exc}") from exc
    missing = [k for k in ("name", "backend", "model_file", "inputs", "outputs") if k not in manifest]
    if missing:
        raise PackageError(f"{path} lacks {', '.join(missing)}; rebuild the package")
    return manifest


def public_signature(model: Signature, text: dict[str, Any] | None) -> Signature:
    """What a client sends and gets: text packages take ``text`` BYTES instead of token tensors."""
    if text is None:
        return model
    return Signature((TensorSpec(TEXT_INPUT, "bytes", ("batch",)),), model.outputs)
