"""``shipyard export triton DIR --out REPO``: a package as a Triton Inference Server model repository.

Writes ``REPO/<name>/config.pbtxt`` and ``REPO/<name>/<version>/model.onnx`` (ONNX Runtime and
ONNX packages), ``model.xml``/``model.bin`` (OpenVINO packages) or ``model.pt`` (TorchScript), with
inputs/outputs, ``max_batch_size``, ``dynamic_batching`` and an instance group. The config is
written as text but checked against Triton's own ``ModelConfig`` schema when ``tritonclient`` is
installed.

Text packages export the token-level model: Triton clients send ``input_ids``/``attention_mask``
(the package's ``tokenizer.json`` is copied next to the config for them), because Triton's
backends do not tokenise.

Example::

    >>> export_triton("pkgs/digits", "triton_repo")  # doctest: +SKIP
    PosixPath('triton_repo/digits')
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shipyard.errors import PackageError, UsageError
from shipyard.records import Signature
from shipyard.triton_config import TritonOptions, check_schema, model_text, parameter

_BACKENDS = {  # artifact format → (Triton backend, platform or "", model file name)
    "onnx": ("onnxruntime", "onnxruntime_onnx", "model.onnx"),
    "openvino": ("openvino", "", "model.xml"),
    "torchscript": ("pytorch", "pytorch_libtorch", "model.pt"),
}


def export_triton(package: str | Path, out: str | Path, options: TritonOptions | None = None) -> Path:
    """Write the package in ``package`` into the Triton repository ``out``; returns the model folder."""
    from shipyard.package.manifest import read_manifest

    options = options or TritonOptions()
    folder = Path(package)
    manifest = read_manifest(folder)
    fmt = manifest.get("artifact_format")
    if fmt not in _BACKENDS:
        raise UsageError(f"package {folder} holds a {fmt!r} model, which Triton cannot load; expected a package "
                         f"built for {', '.join(sorted(_BACKENDS))} (e.g. shipyard build --backends onnxruntime)")
    signature = Signature.from_json(manifest.get("model_signature") or manifest)
    threads = options.threads or int(manifest.get("threads", 1))
    text = config_text(manifest["name"], fmt, signature, options, threads)
    check_schema(text)
    model_dir = Path(out) / manifest["name"]
    version_dir = model_dir / str(manifest.get("version", 1))
    version_dir.mkdir(parents=True, exist_ok=True)
    _copy_model(folder, manifest, fmt, version_dir)
    if manifest.get("text"):
        shutil.copy2(folder / manifest["text"]["tokenizer"], model_dir / "tokenizer.json")
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir


_THREADS_PARAMETER = {"onnxruntime": "intra_op_thread_count", "openvino": "INFERENCE_NUM_THREADS"}
"""Triton backend → the model-config parameter that sets its thread count."""


def config_text(name: str, fmt: str, signature: Signature, options: TritonOptions, threads: int) -> str:
    """The ``config.pbtxt`` of a model in format ``fmt``, run by Triton's own backend for that format."""
    backend, platform, filename = _BACKENDS[fmt]
    engine = [f'default_model_filename: "{filename}"']
    if backend in _THREADS_PARAMETER:
        engine.append(parameter(_THREADS_PARAMETER[backend], threads))
    return model_text(name, backend, platform, signature, options, engine)


def _copy_model(folder: Path, manifest: dict, fmt: str, version_dir: Path) -> None:
    model_file = folder / manifest["model_file"]
    if not model_file.is_file():
        raise PackageError(f"package {folder} lacks its model file {manifest['model_file']}; rebuild the package")
    target = _BACKENDS[fmt][2]
    shutil.copy2(model_file, version_dir / target)
    if fmt == "openvino":
        shutil.copy2(model_file.with_suffix(".bin"), version_dir / "model.bin")
    elif fmt == "onnx":  # external weights keep their own names, which the .onnx file refers to
        for extra in model_file.parent.iterdir():
            if extra != model_file and extra.suffix != ".onnx":
                shutil.copy2(extra, version_dir / extra.name)
