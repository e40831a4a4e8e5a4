"""Writing a package: the chosen candidate's files, ``manifest.json``, ``candidates.json``, ``report.html``.

The package is written into a sibling temporary folder and moved into place only when complete,
so a failed build never leaves a half-written ``--out`` and never destroys the package that was
there before.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard import __version__
from shipyard.errors import PackageError, UsageError
from shipyard.records import Artifact, Candidate, Signature, TensorSpec
from shipyard.text import TEXT_INPUT

if TYPE_CHECKING:
    from shipyard.build.pipeline import BuildOptions, BuildResult

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse, before any work, to replace a folder that is not empty unless ``force``."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; expected a folder for the package")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out} exists and is not empty; pass --force to replace it")


def write_package(result: BuildResult, options: BuildOptions, out: Path, work: Path) -> Path:
    chosen = result.chosen
    assert chosen is not None
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        artifact = _package_artifact(chosen, result, work)
        files = _copy_artifact(artifact, staging / "model")
        text = _copy_tokenizer(result, staging)
        manifest = manifest_for(result, options, chosen, artifact, files, text)
        from shipyard.processing.package import add_to_manifest, attach_processing

        config = options.preprocess or result.source.processing_config
        add_to_manifest(manifest, attach_processing(config, artifact.signature, staging))
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        (staging / "candidates.json").write_text(json.dumps([c.to_json() for c in result.candidates], indent=2))
        from shipyard.build.report import write_report

        write_report(result, staging / "report.html")
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _package_artifact(chosen: Candidate, result: BuildResult, work: Path) -> Artifact:
    if chosen.artifact is not None:
        return chosen.artifact
    from shipyard.build.artifacts import Workshop

    chosen.artifact = Workshop(result.source, work / "package-artifacts").make(chosen.recipe)
    return chosen.artifact


def _copy_artifact(artifact: Artifact, folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    copied = []
    for file in artifact.files:
        target = folder / (file.name if file.parent == artifact.path.parent else file.relative_to(artifact.path))
        shutil.copy2(file, target)
        copied.append(target.name)
    return copied


def _copy_tokenizer(result: BuildResult, staging: Path) -> dict[str, Any] | None:
    frontend = result.source.text
    if frontend is None:
        return None
    shutil.copy2(frontend.tokenizer_file, staging / "tokenizer.json")
    return {"tokenizer": "tokenizer.json", "max_length": frontend.max_length,
            "input_names": list(frontend.input_names)}


def public_signature(model: Signature, text: dict[str, Any] | None) -> Signature:
    """What a client sends and gets: text packages take ``text`` BYTES instead of token tensors."""
    if text is None:
        return model
    return Signature((TensorSpec(TEXT_INPUT, "bytes", ("batch",)),), model.outputs)


def manifest_for(result: BuildResult, options: BuildOptions, chosen: Candidate, artifact: Artifact,
                 files: list[str], text: dict[str, Any] | None) -> dict[str, Any]:
    signature = public_signature(artifact.signature, text)
    verification = chosen.verification
    return {
        "format_version": FORMAT_VERSION,
        "name": result.source.name,
        "version": 1,
        "backend": chosen.backend,
        "precision": chosen.precision,
        "recipe": chosen.recipe.to_json(),
        "artifact_format": artifact.format,
        "model_file": f"model/{artifact.path.name}",
        "files": [f"model/{f}" for f in files] + (["tokenizer.json"] if text else [])
                 + ["candidates.json", "report.html"],
        "inputs": [s.to_json() for s in signature.inputs],
        "outputs": [s.to_json() for s in signature.outputs],
        "model_signature": artifact.signature.to_json(),
        "text": text,
        "threads": result.threads,
        "metrics": _metrics(result, chosen),
        "candidates": [c.to_json() for c in result.candidates],
        "baseline": result.baseline.to_json() if result.baseline else None,
        "source": {"model": options.model, "kind": result.source.kind, "content_hash": result.source.content_hash,
                   "task": result.source.task},
        "data": {"description": result.data_description, "synthetic": result.synthetic_data,
                 "calibration_samples": result.calibration_size, "evaluation_samples": result.evaluation_size,
                 "metric": result.metric, "max_drop": options.max_drop},
        "machine": machine_description(),
        "notes": result.notes,
        "cpp_loading": _cpp_note(artifact.format),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "shipyard_version": __version__,
    }


def _cpp_note(format: str) -> str | None:
    from shipyard.convert.aoti import LIBTORCH_NOTE

    return LIBTORCH_NOTE.get(format)


def _metrics(result: BuildResult, chosen: Candidate) -> dict[str, Any]:
    verification, timing = chosen.verification, chosen.timing
    return {
        "metric": result.metric,
        "value": verification.value if verification else None,
        "source_value": verification.reference_value if verification else None,
        "drop": verification.drop if verification else None,
        "latency_p50_ms": timing.p50_ms if timing else None,
        "latency_p90_ms": timing.p90_ms if timing else None,
        "latency_p99_ms": timing.p99_ms if timing else None,
        "throughput": timing.throughput if timing else None,
        "throughput_batch": timing.throughput_batch if timing else None,
        "speedup_vs_baseline": result.speedup(chosen),
        "baseline": result.baseline.key if result.baseline else None,
    }


def machine_description() -> dict[str, Any]:
    import os

    flags = _cpu_flags()
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_flags": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if f in flags]}


def _cpu_info() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _cpu_info().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _cpu_flags() -> set[str]:
    for line in _cpu_info().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _swap_into_place(staging: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{int(time.time() * 1000)}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise PackageError(f"{folder} is not a Shipyard package: no {MANIFEST} in it")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PackageError(f"{path} is not valid JSON: {exc}") from exc
    missing = [k for k in ("name", "backend", "model_file", "inputs", "outputs") if k not in manifest]
    if missing:
        raise PackageError(f"{path} lacks {', '.join(missing)}; rebuild the package")
    return manifest
