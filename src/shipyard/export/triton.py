"""``shipyard export triton DIR --out REPO``: a package as a Triton Inference Server model
repository.

Two forms, per package:

* **native** — ``REPO/<name>/config.pbtxt`` for Triton's own backend of the artifact
  (``onnxruntime_onnx``, ``openvino``, ``pytorch_libtorch``, ``tensorrt_plan``) with inputs,
  outputs, ``max_batch_size``, ``dynamic_batching``, instance groups and the runtime's thread
  settings, and the model file in ``REPO/<name>/<version>/``;
* **Python backend** — for what no native backend runs (text packages taking BYTES text, image
  packages taking JPEG bytes, split packages, ncnn/MNN/TVM…) or when ``python_backend`` is asked:
  ``backend: "python"``, the package's public inputs/outputs, and in ``<version>/`` the package
  itself, a ``model.py`` copied verbatim from :mod:`shipyard.export.triton_model` and
  ``shipyard.json`` naming the package folder (read at run time, never written into code).

``REPO/README.md`` says which Triton backends and Python packages the repository needs. The
config is checked against Triton's own ``ModelConfig`` schema when ``tritonclient`` is installed.

Example::

    >>> export_triton("pkgs/digits", "triton_repo")  # doctest: +SKIP
    PosixPath('triton_repo/digits')
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.errors import PackageError, UsageError
from shipyard.records import Signature
from shipyard.triton_config import TritonOptions, check_schema, model_text, parameter, parse_config
from shipyard.verify.batchaxis import BatchProof

LOGGER = logging.getLogger("shipyard.export")

__all__ = ["TritonOptions", "export_triton", "native_format", "parse_config"]

_BACKENDS = {  # artifact format → (Triton backend, platform or "", model file name)
    "onnx": ("onnxruntime", "onnxruntime_onnx", "model.onnx"),
    "openvino": ("openvino", "", "model.xml"),
    "torchscript": ("pytorch", "pytorch_libtorch", "model.pt"),
    "tensorrt": ("tensorrt", "tensorrt_plan", "model.plan"),
}
_THREADS = {  # Triton backend → its thread-count parameters (what Model Navigator writes)
    "onnxruntime": ("intra_op_thread_count", "inter_op_thread_count"),
    "openvino": ("INFERENCE_NUM_THREADS",),
    "pytorch": ("INTRA_OP_THREAD_COUNT", "INTER_OP_THREAD_COUNT"),
}
PACKAGE_FOLDER = "package"  # the package inside a Python-backend model version
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def export_triton(
    package: str | Path, out: str | Path, options: TritonOptions | None = None
) -> Path:
    """Write the package in ``package`` into the Triton repository ``out``; returns the model
    folder."""
    from shipyard.package.manifest import read_manifest

    options = options or TritonOptions()
    folder = Path(package)
    if options.instances is None:
        options = measured_options(folder, options)[0]
    manifest = read_manifest(folder)
    name, version = _checked_name(manifest), _checked_version(manifest)
    threads = options.threads or int(manifest.get("threads", 1))
    fmt = manifest.get("artifact_format")
    native = native_format(manifest) and not options.python_backend
    if not native:
        from shipyard.package.trust import require_consent

        require_consent(folder, manifest, options.trust_code)
    signature = Signature.from_json((native and manifest.get("model_signature")) or manifest)
    proof = batch_proof(folder, options) if signature.batched else None
    if proof is not None and not proof.batched:
        LOGGER.warning("model %r: Triton runs each request alone: %s", name, proof.reason)
        options = replace(options, dynamic_batching=False)
    if native:  # Triton's backend runs the model itself: the model's own tensors
        text = config_text(name, fmt, signature, options, threads)
    else:  # shipyard.load runs it: the package's public tensors (BYTES text or images)
        text = python_config_text(name, signature, options)
    check_schema(text)
    model_dir = Path(out) / name
    if folder.resolve() in model_dir.resolve().parents:
        raise UsageError(
            f"--out {out} is inside the package {folder}; expected a repository folder outside it"
        )
    version_dir = model_dir / version
    if version_dir.exists():
        shutil.rmtree(version_dir)
    version_dir.mkdir(parents=True)
    if native:
        _copy_model(folder, manifest, fmt, version_dir)
    else:
        _write_python_model(folder, version_dir, threads, options.trust_code)
    (model_dir / "config.pbtxt").write_text(text)
    from shipyard.export.triton_readme import write_readme

    write_readme(Path(out))
    return model_dir


def native_format(manifest: dict[str, Any]) -> bool:
    """Whether a Triton backend of its own runs the package: a plain tensor model in a format it
    loads."""
    plain = not manifest.get("text") and not manifest.get("processing")
    return plain and manifest.get("artifact_format") in _BACKENDS


def python_config_text(name: str, signature: Signature, options: TritonOptions) -> str:
    """The ``config.pbtxt`` of a Python-backend model taking the package's public inputs."""
    return model_text(name, "python", "", signature, options)


def _checked_name(manifest: dict[str, Any]) -> str:
    name = str(manifest["name"])
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"package name {name!r} cannot name a Triton model folder; expected letters, digits, "
            f"'_', '.' or '-' (rebuild with --name)"
        )
    return name


def _checked_version(manifest: dict[str, Any]) -> str:
    version = str(manifest.get("version", 1))
    if not version.isdigit() or int(version) < 1:
        raise UsageError(
            f"package version {version!r} cannot be a Triton model version; expected a positive "
            "integer"
        )
    return str(int(version))


def _write_python_model(folder: Path, version_dir: Path, threads: int, trust_code: bool) -> None:
    _copy_package(folder, version_dir / PACKAGE_FOLDER)
    template = Path(__file__).with_name("triton_model.py")
    shutil.copyfile(template, version_dir / "model.py")
    settings = {"package": PACKAGE_FOLDER, "threads": threads, "trust_code": trust_code}
    (version_dir / "shipyard.json").write_text(json.dumps(settings, indent=2) + "\n")


def _copy_package(folder: Path, target: Path) -> None:
    """Copy the package's regular files; a symbolic link could reach outside the repository."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_symlink():
            raise PackageError(
                f"package {folder} holds a symbolic link {relative}; expected regular files only"
            )
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)


def batch_proof(folder: Path, options: TritonOptions) -> BatchProof | None:
    """Whether Triton may join the package's requests into one batch: the two-sample proof
    ``shipyard serve`` runs (:mod:`shipyard.verify.batchaxis`) on the package loaded here; None
    when it cannot load here (its runtime is not installed), so the config batches as asked."""
    from shipyard.predictor import load
    from shipyard.verify.batchaxis import batching_proof

    try:
        predictor = load(folder, 1, options.trust_code)
    except Exception as exc:  # noqa: BLE001 - the export stays possible where the runtime is not
        LOGGER.warning(
            "could not load %s here to prove Triton may batch it (%s: %s); its config batches",
            folder,
            type(exc).__name__,
            exc,
        )
        return None
    try:
        return batching_proof(
            predictor, True, min(options.max_batch_size, predictor.max_batch_size)
        )
    finally:
        predictor.close()


def measured_options(folder: Path, options: TritonOptions) -> tuple[TritonOptions, Any]:
    """``options`` with the instances × threads that ran the package fastest on this machine
    (``--instances auto``, as ``shipyard serve`` measures them), and the measurement."""
    from shipyard.predictor import load
    from shipyard.serve.layout import measured_instances

    def open_instance(threads: int | None) -> Any:
        return load(folder, threads, options.trust_code)

    choice, instances = measured_instances(
        folder, open_instance, options.threads, options.max_batch_size
    )
    for instance in instances:
        instance.close()
    layout = choice.layout
    return replace(options, instances=layout.instances, threads=layout.threads), choice


def config_text(
    name: str, fmt: str, signature: Signature, options: TritonOptions, threads: int
) -> str:
    """The ``config.pbtxt`` of a model in format ``fmt``, run by Triton's own backend for that
    format."""
    backend, platform, filename = _BACKENDS[fmt]
    engine = [f'default_model_filename: "{filename}"']
    # inter-op threads run independent branches; one keeps the total at what the build timed
    engine += [
        parameter(key, threads if i == 0 else 1) for i, key in enumerate(_THREADS.get(backend, ()))
    ]
    return model_text(name, backend, platform, signature, options, engine)


def _copy_model(folder: Path, manifest: dict, fmt: str, version_dir: Path) -> None:
    model_file = folder / manifest["model_file"]
    if not model_file.is_file():
        raise PackageError(
            f"package {folder} lacks its model file {manifest['model_file']}; rebuild the package"
        )
    target = _BACKENDS[fmt][2]
    shutil.copy2(model_file, version_dir / target)
    if fmt == "openvino":
        shutil.copy2(model_file.with_suffix(".bin"), version_dir / "model.bin")
    elif fmt == "onnx":  # external weights keep their own names, which the .onnx file refers to
        for extra in model_file.parent.iterdir():
            if extra != model_file and extra.suffix != ".onnx":
                shutil.copy2(extra, version_dir / extra.name)
