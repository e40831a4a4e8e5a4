"""Where a package may be written: ``--force`` replaces an old Shipyard package and nothing else.

A careless ``--out ~ --force`` or ``--out . --force`` must not delete anything, so a non-empty
``--out`` is replaced only when it holds a Shipyard manifest, is not a symlink, and is not the
home folder, the working directory, the file-system root, or a folder that holds (or is above)
one of the build's inputs. Everything else is a one-sentence refusal before any work starts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from shipyard.errors import UsageError

MANIFEST = "manifest.json"


def check_out_dir(out: Path, force: bool, inputs: list[Path] | tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, an ``--out`` the build may not write or replace."""
    out = Path(out)
    if out.is_symlink():
        raise UsageError(
            f"--out {out} is a symlink; give the real folder, a symlink's target is never replaced"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; expected a folder for the package")
    _refuse_protected(out, inputs)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise UsageError(
            f"--out {out} exists and is not empty; pass --force to replace it (only an old "
            f"Shipyard package is ever replaced)"
        )
    if not is_package(out):
        raise UsageError(
            f"--out {out} is not a Shipyard package (no Shipyard {MANIFEST} in it); --force "
            f"replaces only an old package, so nothing was touched: choose a new or empty folder"
        )


def is_package(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest that a Shipyard build wrote (not another tool's
    manifest.json)."""
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        return False
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return (
        isinstance(manifest, dict)
        and {"format_version", "backend", "model_file"} <= manifest.keys()
    )


def _refuse_protected(out: Path, inputs: list[Path] | tuple[Path, ...]) -> None:
    target = out.resolve()
    protected = {
        Path.home().resolve(): "your home folder",
        Path.cwd().resolve(): "the working directory",
        Path(target.anchor): "the file-system root",
    }
    if target in protected:
        raise UsageError(
            f"--out {out} is {protected[target]}; expected a folder of its own for the package"
        )
    for given in inputs:
        source = Path(given).resolve()
        if source == target or target in source.parents:
            raise UsageError(
                f"--out {out} holds the build's input {given}; writing the package there would "
                f"delete it: choose another folder"
            )


def check_still_replaceable(out: Path) -> None:
    """Just before the swap: the folder may have changed during a long build."""
    if out.is_symlink() or (
        out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_package(out)))
    ):
        raise UsageError(
            f"--out {out} changed during the build and is no longer an old Shipyard package; "
            f"nothing was replaced"
        )


def build_inputs(model: str, *paths: Path | None) -> list[Path]:
    """The files and folders a build reads: the model's path (any ``hf:``/``file.py:fn`` form) and
    others."""
    found = [Path(p) for p in paths if p is not None]
    if model.startswith("example:"):  # a built-in name, even where a folder of that name exists
        return found
    text = (
        model.split(":", 1)[1] if model.startswith(("hf:", "paddle:", "tf:", "caffe:")) else model
    )
    for part in text.split(":"):
        if part and os.path.exists(part):
            found.append(Path(part))
    return found
