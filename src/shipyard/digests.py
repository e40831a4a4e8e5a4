"""SHA-256 digests of a package's files: what the writer seals and every reader checks.

At the bottom of the layering (it needs only ``errors``), so the package writer, the fake backend's
package writer and ``shipyard.package.trust`` share one definition.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path

from shipyard.errors import PackageError

MANIFEST = "manifest.json"


def package_files(folder: Path) -> Iterator[str]:
    """Every file of the package except the manifest, as sorted relative POSIX paths; refuses
    symlinks."""
    root = folder.resolve()
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise PackageError(
                f"package {folder} holds a symlink {path.relative_to(root)}; expected only "
                f"plain files (a link may point out of the package)"
            )
        if stat.S_ISREG(mode) and path != root / MANIFEST:
            yield path.relative_to(root).as_posix()
        elif not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise PackageError(
                f"package {folder} holds {path.relative_to(root)}, which is not a plain file"
            )


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return "sha256:" + sha.hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    """``{relative path: "sha256:…"}`` of every file in ``folder`` but the manifest."""
    return {relative: digest(folder / relative) for relative in package_files(folder)}
