"""What every framework's conversion shares: where converted files live, quiet converters, the ONNX
signature."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shipyard import machine
from shipyard.records import Signature


def converted_dir(framework: str, content_hash: str, converter: str) -> tuple[Path, bool]:
    """The folder for one model's conversion and whether it is already complete there.

    Keyed by the source's content hash and the converter's version, so a rebuild skips the
    conversion;
    ``SHIPYARD_NO_CACHE=1`` gives a fresh temporary folder instead.
    """
    if os.environ.get("SHIPYARD_NO_CACHE"):
        return Path(tempfile.mkdtemp(prefix=f"shipyard-{framework}-")), False
    folder = machine.cache_root() / "converted" / f"{framework}-{content_hash}-{converter}"
    return folder, (folder / "model.onnx").is_file()


def work_dir(folder: Path) -> Path:
    """A fresh folder beside ``folder`` (same file system) to convert into before ``publish``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))


def publish(work: Path, folder: Path) -> Path:
    """Move a finished conversion into place in one rename, so a crash never leaves half a model
    cached."""
    if (
        folder / "model.onnx"
    ).is_file():  # another build converted the same model meanwhile: keep its copy
        shutil.rmtree(work, ignore_errors=True)
        return folder
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(work, folder)
    return folder


@dataclass
class Captured:
    text: str = ""
    """What was printed, once the ``with`` block has ended."""


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to a file while converting.

    Converters and frameworks print from C++ straight to the descriptors, which Python's
    redirect_stdout does not catch; what they print is kept for the error message when they fail.
    """
    captured = Captured()
    with tempfile.TemporaryFile("w+b", prefix="shipyard-convert-") as sink:
        _flush()
        saved = [os.dup(1), os.dup(2)]
        for stream in (1, 2):
            os.dup2(sink.fileno(), stream)
        try:
            yield captured
        finally:
            _flush()  # what Python buffered while capturing belongs to the capture
            for stream, fd in zip((1, 2), saved):
                os.dup2(fd, stream)
                os.close(fd)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass


def log_tail(captured: Captured, lines: int = 6, keep: tuple[str, ...] = ()) -> str:
    """The last lines of a converter's output (or of the lines with one of ``keep`` in them), as
    one line."""
    text = captured.text.splitlines()
    picked = [line for line in text if any(k in line for k in keep)] or text[-lines:]
    return " | ".join(line.strip() for line in picked[-lines:] if line.strip())[:600]


def finish_onnx(path: Path) -> Signature:
    """Name the first, dynamic axis ``batch`` in the converted graph, check it and return its
    signature."""
    import onnx

    from shipyard.sources.onnx_file import onnx_signature

    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return onnx_signature(model)


def onnx_file_signature(path: Path) -> Signature:
    import onnx

    from shipyard.sources.onnx_file import onnx_signature

    return onnx_signature(onnx.load(str(path), load_external_data=False))
