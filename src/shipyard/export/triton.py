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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import PackageError, UsageError
from shipyard.records import Signature, TensorSpec

_BACKENDS = {  # artifact format → (Triton backend, platform or "", model file name)
    "onnx": ("onnxruntime", "onnxruntime_onnx", "model.onnx"),
    "openvino": ("openvino", "", "model.xml"),
    "torchscript": ("pytorch", "pytorch_libtorch", "model.pt"),
}
_TYPES = {"BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32",
          "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32",
          "INT64": "TYPE_INT64", "FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64",
          "BYTES": "TYPE_STRING"}


@dataclass
class TritonOptions:
    """What goes into the ``config.pbtxt`` beyond the package's own signature."""

    max_batch_size: int = 32
    max_queue_delay_us: int = 2000
    instances: int = 1
    threads: int | None = None


def export_triton(package: str | Path, out: str | Path, options: TritonOptions | None = None) -> Path:
    """Write the package in ``package`` into the Triton repository ``out``; returns the model folder."""
    from shipyard.build.package import read_manifest

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
    _check_schema(text)
    model_dir = Path(out) / manifest["name"]
    version_dir = model_dir / str(manifest.get("version", 1))
    version_dir.mkdir(parents=True, exist_ok=True)
    _copy_model(folder, manifest, fmt, version_dir)
    if manifest.get("text"):
        shutil.copy2(folder / manifest["text"]["tokenizer"], model_dir / "tokenizer.json")
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir


def config_text(name: str, fmt: str, signature: Signature, options: TritonOptions, threads: int) -> str:
    """The ``config.pbtxt`` of a model in format ``fmt``, run by Triton's own backend for that format."""
    backend, platform, filename = _BACKENDS[fmt]
    engine = [f'default_model_filename: "{filename}"']
    if backend == "onnxruntime":
        engine.append(_parameter("intra_op_thread_count", threads))
    elif backend == "openvino":
        engine.append(_parameter("INFERENCE_NUM_THREADS", threads))
    return model_text(name, backend, platform, signature, options, engine)


def model_text(name: str, backend: str, platform: str, signature: Signature, options: TritonOptions,
               engine: list[str] | None = None) -> str:
    """A model's config in Triton's text format: tensors, batching and instances, plus ``engine`` lines.

    ``shipyard export triton`` writes it as ``config.pbtxt``; ``shipyard serve`` answers it (parsed
    by :func:`parse_config`) to ``get_model_config``, so both describe a model the same way.
    """
    batched = all(spec.batched for spec in signature.inputs + signature.outputs)
    lines = [f'name: "{name}"', f'backend: "{backend}"']
    lines += [f'platform: "{platform}"'] if platform else []
    lines += list(engine or []) + [f"max_batch_size: {options.max_batch_size if batched else 0}"]
    lines += [_tensors("input", signature.inputs, batched), _tensors("output", signature.outputs, batched)]
    if batched:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {options.max_queue_delay_us} }}")
    lines.append(f"instance_group [ {{ count: {options.instances} kind: KIND_CPU }} ]")
    return "\n".join(lines) + "\n"


def _tensors(kind: str, specs: tuple[TensorSpec, ...], batched: bool) -> str:
    entries = []
    for spec in specs:
        dims = spec.kserve_shape[1:] if batched else spec.kserve_shape
        # Triton refuses empty dims: one value per sample is dims [1] reshaped to no dims, as its docs do
        shape = f'dims: [ {", ".join(str(d) for d in dims)} ]' if dims else "dims: [ 1 ] reshape: { shape: [ ] }"
        entries.append(f'  {{ name: "{spec.name}" data_type: {_TYPES[spec.datatype]} {shape} }}')
    return f"{kind} [\n" + ",\n".join(entries) + "\n]"


def _parameter(key: str, value: object) -> str:
    return f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}'


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


def parse_config(text: str) -> Any:
    """``text`` parsed as Triton's ``ModelConfig`` message; needs ``tritonclient[grpc]``."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:  # a bug of ours, never the user's
        raise PackageError(f"the Triton config we wrote does not parse as ModelConfig: {exc}") from exc


def _check_schema(text: str) -> None:
    """Parse ``text`` as Triton's ``ModelConfig`` when tritonclient is installed."""
    try:
        import tritonclient.grpc.model_config_pb2  # noqa: F401
    except ImportError:
        return
    parse_config(text)
