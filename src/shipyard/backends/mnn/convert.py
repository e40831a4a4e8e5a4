"""ONNX → MNN (``.mnn``) with MNN's converter, run in its own process.

The converter is called directly (``_tools.mnnconvert``), not through the ``mnnconvert`` console
script: that script's wrapper sends usage logs to a remote server and tries to pip-install a
logging SDK. Options: ``fp16`` stores weights as FP16; ``weight_bits=8`` stores INT8 weights
(weight-only quantisation, computed in float).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shipyard.errors import ConversionError
from shipyard.records import Artifact

_CONVERT = "import sys, _tools; _tools.mnnconvert(sys.argv[1:])"  # returns True on success


def convert_to_mnn(
    onnx: Artifact, path: Path, fp16: bool = False, weight_bits: int = 0, timeout: float = 600
) -> Artifact:
    args = [
        sys.executable,
        "-c",
        _CONVERT,
        "mnnconvert",
        "-f",
        "ONNX",
        "--modelFile",
        str(onnx.path),
        "--MNNModel",
        str(path),
        "--bizCode",
        "shipyard",
    ]
    if fp16:
        args.append("--fp16")
    if weight_bits:
        args += ["--weightQuantBits", str(weight_bits)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"the MNN converter did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0 or "Converted Success" not in done.stdout or not path.is_file():
        raise ConversionError(
            f"the MNN converter could not convert {onnx.path.name} "
            f"(exit {done.returncode}): {_why(done.stdout + done.stderr)[:400]}"
        )
    return Artifact(path, "mnn", onnx.signature)


def _why(output: str) -> str:
    """The converter's own reason (e.g. ``These Op Not Support: ONNX::IsNaN``), else its last
    lines."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reasons = [line for line in lines if "Not Support" in line or "rror" in line]
    return " | ".join(reasons or lines[-3:])
