"""Whether a package folder may be used: its manifest is checked, its files are sealed, its code is
declared.

A package is data from somewhere else, so nothing in ``manifest.json`` is taken on trust:

* names and versions match strict patterns (they become folder names, config text and URLs);
* every path is relative, free of ``..``, and resolves to a regular file inside the package;
  a symlink anywhere in the package is refused;
* ``digests`` holds the SHA-256 of every file (the writer seals the package), and loading checks
  every one: a file changed, added or removed after the build is refused;
* a package that carries code — custom-op Python, pickled torch objects, compiled native libraries —
  says so under ``carries_code``, and loading it needs ``trust_code=True`` (``--trust-package``).
  What counts as code is found from the files themselves, never from the manifest's own claim.

Example::

    >>> manifest = read_manifest(Path("pkg"))  # doctest: +SKIP
    >>> require_consent(Path("pkg"), manifest, trust_code=False)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.digests import digest, file_digests, package_files
from shipyard.errors import PackageError

MANIFEST = "manifest.json"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
VERSION = re.compile(r"[0-9]{1,9}")  # Triton's version folders are integers
TENSOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,254}")
DATATYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
    "BYTES",
}
CODE_FORMATS = {
    "split": ("python", "custom-operator Python files inside the .split.zip, imported at load"),
    "tvm": ("native-library", "a TVM-compiled shared library, loaded into the process"),
    "aoti": ("native-library", "an AOTInductor-compiled shared library, loaded into the process"),
}
NATIVE_SUFFIXES = (".so", ".dll", ".dylib", ".pyd")
PYTHON_SUFFIXES = (".py", ".pyc", ".pkl", ".pickle")


class UntrustedPackage(PackageError):
    """A package carries code and the user has not consented to run it."""


@dataclass(frozen=True)
class CarriedCode:
    """One piece of code a package would run when loaded."""

    kind: str  # python | pickle | native-library
    file: str
    why: str


def validate_manifest(folder: Path, manifest: Any) -> None:
    """Refuse a manifest whose names, version, tensors or paths are not what a Shipyard build
    writes."""
    where = folder / MANIFEST
    if not isinstance(manifest, dict):
        raise PackageError(f"{where} holds a {type(manifest).__name__}; expected a JSON object")
    _check_name(where, "name", manifest.get("name"), NAME)
    _check_name(where, "version", str(manifest.get("version", 1)), VERSION)
    for key in ("backend", "artifact_format"):
        if key in manifest:
            _check_name(where, key, manifest[key], NAME)
    for key in ("inputs", "outputs"):
        _check_tensors(where, key, manifest.get(key))
    model = manifest.get("model_signature")
    if model is not None:
        if not isinstance(model, dict):
            raise PackageError(f"{where}: model_signature is {model!r}; expected an object")
        for key in ("inputs", "outputs"):
            _check_tensors(where, f"model_signature {key}", model.get(key))
    for path in referenced_paths(manifest):
        inside(folder, path)


def _check_name(where: Path, key: str, value: Any, pattern: re.Pattern) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise PackageError(
            f"{where}: {key} {value!r} is not allowed; expected {pattern.pattern} "
            f"(letters, digits, '_', '.', '-'; no paths, quotes or spaces)"
        )


def _check_tensors(where: Path, key: str, specs: Any) -> None:
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        raise PackageError(
            f"{where}: {key} is {specs!r}; expected a non-empty list of tensor objects"
        )
    for spec in specs:
        _check_name(where, f"{key} name", spec.get("name"), TENSOR_NAME)
        datatype = spec.get("datatype")
        if datatype is not None and datatype not in DATATYPES:
            raise PackageError(
                f"{where}: {key} {spec['name']!r} has datatype {datatype!r}; expected one of "
                f"{sorted(DATATYPES)}"
            )
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape
        ):
            raise PackageError(
                f"{where}: {key} {spec['name']!r} has shape {shape!r}; expected a list of "
                f"integers (-1 = dynamic)"
            )


def referenced_paths(manifest: dict[str, Any]) -> Iterator[Any]:
    """Every file path the manifest points at, as written (checked by :func:`inside`)."""
    yield manifest.get("model_file")
    files = manifest.get("files", [])
    if not isinstance(files, list):
        raise PackageError(f"manifest files is {files!r}; expected a list of relative paths")
    yield from files
    text = manifest.get("text")
    if text is not None:
        yield text.get("tokenizer") if isinstance(text, dict) else text
    processing = manifest.get("processing")
    if processing is not None:
        if not isinstance(processing, dict):
            raise PackageError(f"manifest processing is {processing!r}; expected an object")
        yield from (processing[k] for k in ("pre", "post") if k in processing)


def inside(folder: Path, relative: Any) -> Path:
    """``folder / relative``, refused unless it is a plain relative path to a regular file in
    ``folder``."""
    if not isinstance(relative, str) or not relative:
        raise PackageError(
            f"package path {relative!r} is not allowed; expected a relative path such as "
            f"'model/model.onnx'"
        )
    pure = PurePosixPath(relative)
    if (
        pure.is_absolute()
        or "\\" in relative
        or any(part in ("..", "") for part in relative.split("/"))
    ):
        raise PackageError(
            f"package path {relative!r} leaves the package; expected a relative path inside "
            f"{folder} without '..'"
        )
    root = folder.resolve()
    path = root / pure
    for parent in [
        *reversed(pure.parents[:-1]),
        pure,
    ]:  # every component, so no link anywhere in between
        if (root / parent).is_symlink():
            raise PackageError(
                f"package path {relative!r} goes through a symlink; expected plain files "
                f"inside {folder}"
            )
    if not path.resolve().is_relative_to(root):
        raise PackageError(f"package path {relative!r} resolves outside {folder}")
    if not path.is_file():
        raise PackageError(
            f"package {folder} lacks {relative}, which its manifest names; rebuild the package"
        )
    return path


def check_digests(folder: Path, manifest: dict[str, Any]) -> None:
    """Refuse a package whose files differ from the ones its build sealed."""
    recorded = manifest.get("digests")
    if not isinstance(recorded, dict) or not recorded:
        raise PackageError(
            f"package {folder} has no file digests in its manifest; rebuild it with this "
            f"Shipyard (packages are sealed so a changed file is noticed)"
        )
    present = list(package_files(folder))
    extra = sorted(set(present) - set(recorded))
    missing = sorted(set(recorded) - set(present))
    if extra or missing:
        raise PackageError(
            f"package {folder} does not hold the files it was built with: "
            + "; ".join(
                ([f"added {extra}"] if extra else []) + ([f"missing {missing}"] if missing else [])
            )
            + "; rebuild the package"
        )
    for relative in present:
        if digest(inside(folder, relative)) != recorded[relative]:
            raise PackageError(
                f"package file {relative} in {folder} changed after the build (its SHA-256 "
                f"differs from the manifest's); rebuild the package"
            )


def carried_code(folder: Path, manifest: dict[str, Any]) -> list[CarriedCode]:
    """The code loading this package would run, found from its files (not from what it claims)."""
    found = []
    fmt = manifest.get("artifact_format")
    if fmt in CODE_FORMATS:
        kind, why = CODE_FORMATS[fmt]
        found.append(CarriedCode(kind, str(manifest.get("model_file")), why))
    for relative in package_files(folder):
        if relative.endswith(NATIVE_SUFFIXES):
            found.append(CarriedCode("native-library", relative, "a shared library"))
        elif relative.endswith(PYTHON_SUFFIXES):
            found.append(CarriedCode("python", relative, "Python source or a pickle"))
    if fmt == "torch-export":
        found += [
            CarriedCode("pickle", str(manifest.get("model_file")), why)
            for why in pt2_pickles(inside(folder, manifest["model_file"]))
        ]
    return list(dict.fromkeys(found))


def pt2_pickles(path: Path) -> list[str]:
    """Why loading the ``torch.export`` archive ``path`` would unpickle something ([] when it would
    not).

    ``torch.export.load`` reads plain tensors as raw bytes; only tensor subclasses, script objects,
    legacy archives and sample inputs that fail ``weights_only=True`` fall back to full pickle.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            reasons = [f"{n}: a legacy or compiled member" for n in names if _unsafe_member(n)]
            for name in (
                n for n in names if n.endswith(("_weights_config.json", "_constants_config.json"))
            ):
                reasons += _pickled_payloads(name, json.loads(archive.read(name)))
            reasons += [
                f"{n}: sample inputs that need full pickle"
                for n in names
                if "/data/sample_inputs/" in f"/{n}" and not _weights_only(archive.read(n))
            ]
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError, KeyError, AttributeError) as exc:
        raise PackageError(
            f"{path} is not a torch.export archive ({exc}); rebuild the package"
        ) from exc
    return reasons


def _unsafe_member(name: str) -> bool:
    parts = name.split("/")
    return (
        name.endswith(NATIVE_SUFFIXES + (".cpp", ".pkl"))
        or "aotinductor" in parts
        or (parts[-1].startswith("serialized_") and name.endswith(".pt"))
        or (name.endswith(".pt") and "sample_inputs" not in parts)
    )


def _pickled_payloads(name: str, config: dict[str, Any]) -> list[str]:
    reasons = []
    for fqn, meta in (config.get("config") or {}).items():
        path = str(meta.get("path_name", ""))
        if meta.get("use_pickle") or ("constants" in name and not path.startswith("tensor_")):
            reasons.append(f"{name}: {fqn} is stored as a pickle")
    return reasons


def _weights_only(data: bytes) -> bool:
    import io

    import torch

    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # noqa: BLE001 - any refusal by the restricted unpickler means full pickle
        return False
    return True


def require_consent(folder: Path, manifest: dict[str, Any], trust_code: bool) -> list[CarriedCode]:
    """Refuse a package that carries code unless ``trust_code``; returns what it carries."""
    code = carried_code(folder, manifest)
    if code and not trust_code:
        listed = "; ".join(f"{c.file} ({c.kind}: {c.why})" for c in code[:5])
        raise UntrustedPackage(
            f"package {folder} carries code that would run on load: {listed}. Load it only "
            f"if you trust where it came from: shipyard.load(..., trust_code=True) or "
            f"--trust-package"
        )
    return code


def seal(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Record the digest of every file and the code the package carries, and write
    ``manifest.json``."""
    manifest["digests"] = file_digests(folder)
    manifest["carries_code"] = [asdict(c) for c in carried_code(folder, manifest)]
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def load_manifest(folder: Path) -> dict[str, Any]:
    """``folder``'s manifest, validated and digest-checked; the one way a package is read."""
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise PackageError(f"{folder} is not a Shipyard package: no {MANIFEST} in it")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise PackageError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(manifest, dict):
        missing = [
            k for k in ("name", "backend", "model_file", "inputs", "outputs") if k not in manifest
        ]
        if missing:
            raise PackageError(f"{path} lacks {', '.join(missing)}; rebuild the package")
    validate_manifest(folder, manifest)
    check_digests(folder, manifest)
    return manifest
