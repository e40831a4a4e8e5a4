"""Quantised (and tuned TVM) artifacts cached across builds, keyed by source content hash + recipe +
calibration data (or, for TVM, the CPU target) + a digest of the code that makes them.

Re-running a build with another ``--max-drop`` or ``--time-budget`` finds every artifact it made
before and skips the calibration (or the tuning), the slow parts of the road.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from shipyard import machine
from shipyard.records import Artifact

CACHE_VERSION = "1"


def cache_root() -> Path | None:
    """``$SHIPYARD_CACHE/artifacts`` (default ``~/.cache/shipyard``); ``SHIPYARD_NO_CACHE=1`` turns
    it off."""
    if os.environ.get("SHIPYARD_NO_CACHE"):
        return None
    return machine.cache_root() / "artifacts"


def cache_key(*parts: str) -> str:
    return hashlib.sha256("\n".join((CACHE_VERSION, code_version(), *parts)).encode()).hexdigest()[
        :24
    ]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of the code that makes the cached artifacts (converters, quantisers and every
    runtime's own): an artifact a changed quantiser made differently is never read back."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for folder in ("convert", "quantize", "backends", "optimize"):
        for file in sorted((root / folder).rglob("*.py")):
            digest.update(str(file.relative_to(root)).encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def cached(key: str, target: Path, make: Callable[[Path], Artifact]) -> Artifact:
    """The artifact made by ``make(target)``, copied from the cache under ``key`` when it is there.

    ``target`` is a fresh file path in the build's work folder; the artifact always lives there,
    so the package copies build files, never cache files.
    """
    root = cache_root()
    entry = root / key if root else None
    if entry is not None and (entry / "done").is_file():
        for file in entry.iterdir():
            if file.name not in ("done", "signature.json"):
                shutil.copy2(file, target.parent / file.name)
        meta = (entry / "done").read_text().split("\n")
        return Artifact(target.parent / meta[0], meta[1], _signature(entry))
    artifact = make(target)
    if entry is not None:
        _store(entry, artifact)
    return artifact


def _signature(entry: Path):
    import json

    from shipyard.records import Signature

    return Signature.from_json(json.loads((entry / "signature.json").read_text()))


def _store(entry: Path, artifact: Artifact) -> None:
    import json

    staging = entry.with_name(entry.name + f".tmp{os.getpid()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for file in artifact.files:
            shutil.copy2(file, staging / file.name)
        (staging / "signature.json").write_text(json.dumps(artifact.signature.to_json()))
        (staging / "done").write_text(f"{artifact.path.name}\n{artifact.format}")
        shutil.rmtree(entry, ignore_errors=True)
        staging.rename(entry)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # a cache that cannot be written is only slower
