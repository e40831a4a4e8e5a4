"""TorchScript → ncnn (``model.param`` graph + ``model.bin`` weights) with pnnx.

pnnx runs as its own process (it is a native executable shipped in the ``pnnx`` wheel). Weights
stay FP32 (``fp16=0``); ncnn decides at load time whether to store or compute in FP16. A second
input shape with batch 1 tells pnnx which axes are dynamic.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

from shipyard.convert.onnx_export import spec_example
from shipyard.errors import BackendUnavailable, ConversionError
from shipyard.records import Artifact, TensorSpec

_DTYPE_CODES = {"float32": "f32", "float16": "f16", "float64": "f64"}


def pnnx_executable() -> Path:
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("the ncnn converter is not installed: pip install pnnx")
    return Path(list(spec.submodule_search_locations)[0]) / "pnnx"


def shape_argument(specs: tuple[TensorSpec, ...], batch: int | None) -> str:
    """pnnx's ``[2,3,16,16]f32,[…]…`` for the traced example shapes, or with batch ``batch``."""
    parts = []
    for spec in specs:
        if spec.dtype not in _DTYPE_CODES:
            raise ConversionError(f"ncnn takes float inputs; input {spec.name!r} is {spec.dtype}")
        shape = list(spec_example(spec).shape)
        if batch is not None and spec.batched:
            shape[0] = batch
        parts.append("[" + ",".join(str(d) for d in shape) + "]" + _DTYPE_CODES[spec.dtype])
    return ",".join(parts)


def convert_to_ncnn(torchscript: Artifact, path: Path, timeout: float = 600) -> Artifact:
    """Convert a traced TorchScript artifact to ``path`` (``.param``) and its ``.bin`` beside it."""
    signature = torchscript.signature
    scratch = path.parent / "pnnx-work"
    scratch.mkdir(exist_ok=True)
    args = [
        str(pnnx_executable()),
        str(torchscript.path.resolve()),
        f"inputshape={shape_argument(signature.inputs, None)}",
        "fp16=0",
        f"ncnnparam={path.resolve()}",
        f"ncnnbin={path.with_suffix('.bin').resolve()}",
    ]
    if any(spec.batched for spec in signature.inputs):
        args.append(f"inputshape2={shape_argument(signature.inputs, 1)}")
    args += [
        f"{key}={(scratch / name).resolve()}"
        for key, name in (
            ("pnnxparam", "model.pnnx.param"),
            ("pnnxbin", "model.pnnx.bin"),
            ("pnnxpy", "model_pnnx.py"),
            ("pnnxonnx", "model.pnnx.onnx"),
            ("ncnnpy", "model_ncnn.py"),
        )
    ]
    try:
        done = subprocess.run(args, cwd=scratch, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"pnnx did not finish within {timeout:.0f} s") from exc
    shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0 or not path.is_file() or not path.with_suffix(".bin").is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ConversionError(
            f"pnnx could not convert {torchscript.path.name} to ncnn "
            f"(exit {done.returncode}): {' | '.join(tail)[:400]}"
        )
    _check_blob_count(path, len(signature.inputs), len(signature.outputs))
    return Artifact(path, "ncnn", signature)


def _check_blob_count(path: Path, inputs: int, outputs: int) -> None:
    """pnnx names inputs in0… and outputs out0…; the session matches them to the signature by
    position."""
    text = path.read_text()
    got_in = sum(f" in{i}" in text for i in range(inputs + 1))
    got_out = sum(f" out{i}" in text for i in range(outputs + 1))
    if got_in != inputs or got_out != outputs:
        raise ConversionError(
            f"the ncnn graph has {got_in} inputs and {got_out} outputs; the model has "
            f"{inputs} and {outputs} (pnnx may have folded or split some away)"
        )
