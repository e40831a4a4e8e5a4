"""Which framework extras are installed here (for ``shipyard doctor``), found without importing
them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FrameworkExtra:
    name: str
    """The MODEL form's prefix: ``paddle``, ``tf``, ``caffe``."""
    modules: tuple[str, ...]
    """Importable modules it needs (the runtime, then the converter)."""
    packages: tuple[str, ...]
    """Their pip distributions, for the version column."""
    install: str


FRAMEWORK_EXTRAS = (
    FrameworkExtra(
        "paddle",
        ("paddle", "paddle2onnx"),
        ("paddlepaddle", "paddle2onnx"),
        "pip install 'shipyard[paddle]' && pip install --no-deps 'paddle2onnx==2.1.0'",
    ),
    FrameworkExtra(
        "tf", ("tensorflow", "tf2onnx"), ("tensorflow-cpu", "tf2onnx"), "pip install 'shipyard[tf]'"
    ),
    FrameworkExtra("caffe", (), ("caffe-onnx",), ""),  # its own folder: see caffe/converter.py
)


@dataclass
class FrameworkStatus:
    name: str
    available: bool
    version: str
    reason: str = ""
    notes: list[str] = field(default_factory=list)


def framework_statuses() -> list[FrameworkStatus]:
    """One row per framework extra: installed (versions) or what is missing and how to install
    it."""
    from shipyard.sources.caffe.converter import caffe_status

    rows = []
    for extra in FRAMEWORK_EXTRAS:
        if extra.name == "caffe":
            rows.append(caffe_status())
            continue
        missing = [m for m in extra.modules if importlib.util.find_spec(m) is None]
        version = ", ".join(f"{p} {v}" for p in extra.packages if (v := _version(p)))
        reason = f"not available (missing {', '.join(missing)}): {extra.install}" if missing else ""
        rows.append(FrameworkStatus(extra.name, not missing, version, reason))
    return rows


def _version(package: str) -> str:
    for name in (package, package.replace("-cpu", "")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return ""
