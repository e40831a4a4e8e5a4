"""Where caffe-onnx lives and how the child process that uses it is started.

caffe-onnx cannot be installed beside the project (it pins protobuf < 4 and its top-level ``proto``
package would overwrite proto-plus's), so it is installed into a folder of its own:

    pip install --no-deps --upgrade --target ~/.local/share/shipyard/caffe-onnx 'caffe-onnx==0.1.2'

``SHIPYARD_CAFFE_ONNX`` names another folder. Only the child process puts it on its path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shipyard.errors import SourceError

VERSION = "0.1.2"
TIMEOUT_S = 600


def caffe_onnx_dir() -> Path:
    default = Path.home() / ".local" / "share" / "shipyard" / "caffe-onnx"
    return Path(os.environ.get("SHIPYARD_CAFFE_ONNX", default))


def install_command() -> str:
    return f"pip install --no-deps --upgrade --target {caffe_onnx_dir()} 'caffe-onnx=={VERSION}'"


def installed_version() -> str:
    """caffe-onnx's version in its folder, or "" when it is not there."""
    folder = caffe_onnx_dir()
    for info in sorted(folder.glob("caffe_onnx-*.dist-info")):
        if (folder / "src" / "caffe2onnx.py").is_file():
            return info.name.removeprefix("caffe_onnx-").removesuffix(".dist-info")
    return ""


def caffe_status():
    from shipyard.sources.extras import FrameworkStatus

    version = installed_version()
    if not version:
        return FrameworkStatus(
            "caffe",
            False,
            "",
            f"not available (caffe-onnx is not in {caffe_onnx_dir()}): {install_command()}",
        )
    notes = [] if version == VERSION else [f"tested with caffe-onnx {VERSION}"]
    return FrameworkStatus("caffe", True, f"caffe-onnx {version}", "", notes)


def child_env() -> dict[str, str]:
    """The environment of a child that imports caffe-onnx: its folder first, pure-Python
    protobuf."""
    package_root = Path(__file__).resolve().parents[3]  # the folder holding shipyard/
    path = [str(caffe_onnx_dir()), str(package_root)]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python",
    }


def run_worker(prototxt: Path, caffemodel: Path, out_dir: Path) -> dict:
    """Parse and convert in the child; returns its ``layers.json``."""
    if not installed_version():
        raise SourceError(f"caffe: models need caffe-onnx in its own folder: {install_command()}")
    command = [
        sys.executable,
        "-m",
        "shipyard.sources.caffe.worker",
        str(prototxt),
        str(caffemodel),
        str(out_dir),
    ]
    try:
        done = subprocess.run(
            command, env=child_env(), capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceError(
            f"caffe-onnx did not finish converting {prototxt} in {TIMEOUT_S} s"
        ) from exc
    report = out_dir / "layers.json"
    if done.returncode != 0 or not report.is_file():
        last = (
            done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"]
        )[-1]
        raise SourceError(f"caffe-onnx cannot read {prototxt} with {caffemodel.name}: {last[:400]}")
    return json.loads(report.read_text())
