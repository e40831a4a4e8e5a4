"""Writing a package: the chosen candidate's files, ``manifest.json``, ``candidates.json``,
``report.html``.

The package is written into a sibling temporary folder and moved into place only when complete,
so a failed build never leaves a half-written ``--out`` and never destroys the package that was
there before.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard import __version__, machine
from shipyard.errors import PackageError
from shipyard.package.cpu_check import cpu_requirements
from shipyard.package.manifest import FORMAT_VERSION, public_signature
from shipyard.records import Artifact, Candidate

if TYPE_CHECKING:
    from shipyard.pipeline.build import BuildResult


def check_out_dir(out: Path, force: bool, inputs: list[Path] | tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, an ``--out`` that is not empty unless ``force`` and an old
    package."""
    from shipyard.package.outdir import check_out_dir as check

    check(out, force, inputs)


def write_package(result: BuildResult, out: Path) -> Path:
    """Write ``result``'s chosen candidate as a package at ``out``, atomically."""
    chosen = result.chosen
    assert chosen is not None
    out = out.parent.resolve() / out.name  # never a symlink's target (check_out_dir refused links)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        artifact = _package_artifact(chosen)
        files = _copy_artifact(artifact, staging / "model")
        text = _copy_tokenizer(result, staging)
        manifest = manifest_for(result, chosen, artifact, files, text)
        from shipyard.processing.package import add_to_manifest, attach_processing

        config = result.options.output.preprocess or result.source.processing_config
        add_to_manifest(manifest, attach_processing(config, artifact.signature, staging))
        (staging / "candidates.json").write_text(
            json.dumps([c.to_json() for c in result.candidates], indent=2)
        )
        from shipyard.package.report import write_report
        from shipyard.package.trust import seal

        write_report(result, staging / "report.html", manifest, result.options.output.out)
        seal(staging, manifest)
        make_readable(staging)
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _package_artifact(chosen: Candidate) -> Artifact:
    """The very file the build verified and timed."""
    if chosen.artifact is None:
        raise PackageError(f"{chosen.key} has no artifact to package")
    return chosen.artifact


def _copy_artifact(artifact: Artifact, folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    copied = []
    for file in artifact.files:
        target = folder / (
            file.name if file.parent == artifact.path.parent else file.relative_to(artifact.path)
        )
        shutil.copy2(file, target)
        copied.append(target.name)
    return copied


def _copy_tokenizer(result: BuildResult, staging: Path) -> dict[str, Any] | None:
    frontend = result.source.text
    if frontend is None:
        return None
    shutil.copy2(frontend.tokenizer_file, staging / "tokenizer.json")
    return {
        "tokenizer": "tokenizer.json",
        "max_length": frontend.max_length,
        "input_names": list(frontend.input_names),
    }


def manifest_for(
    result: BuildResult,
    chosen: Candidate,
    artifact: Artifact,
    files: list[str],
    text: dict[str, Any] | None,
) -> dict[str, Any]:
    from shipyard.doctor import runtime_versions

    signature = public_signature(artifact.signature, text)
    return {
        "format_version": FORMAT_VERSION,
        "name": result.source.name,
        "version": 1,
        "backend": chosen.backend,
        "precision": chosen.precision,
        "recipe": chosen.recipe.to_json(),
        "runtime": chosen.runtime,
        "cpu_requirements": cpu_requirements(chosen, result.candidates, machine.cpu().flags),
        "artifact_format": artifact.format,
        "model_file": f"model/{artifact.path.name}",
        "files": [f"model/{f}" for f in files]
        + (["tokenizer.json"] if text else [])
        + ["candidates.json", "report.html"],
        "inputs": [s.to_json() for s in signature.inputs],
        "outputs": [s.to_json() for s in signature.outputs],
        "model_signature": artifact.signature.to_json(),
        "text": text,
        "threads": result.threads,
        "metrics": _metrics(result, chosen),
        "candidates": [c.to_json() for c in result.candidates],
        "baseline": result.baseline.to_json() if result.baseline else None,
        "source": {
            "model": result.options.source.model,
            "kind": result.source.kind,
            "content_hash": result.source.content_hash,
            "task": result.source.task,
        },
        "data": {
            "description": result.data_description,
            "synthetic": result.synthetic_data,
            "calibration_samples": result.calibration_size,
            "evaluation_samples": result.evaluation_size,
            "metric": result.metric,
            "max_drop": result.options.search.max_drop,
        },
        "machine": machine.describe(),
        "versions": runtime_versions(sorted({c.backend for c in result.candidates})),
        "notes": result.notes,
        "cpp_loading": _cpp_note(artifact.format),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "shipyard_version": __version__,
    }


def _cpp_note(format: str) -> str | None:
    from shipyard.backends.aoti.convert import LIBTORCH_NOTE

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


def _swap_into_place(staging: Path, out: Path) -> None:
    from shipyard.package.outdir import check_still_replaceable

    check_still_replaceable(out)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{int(time.time() * 1000)}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def make_readable(folder: Path) -> None:
    """Folders 0755, files 0644: a package is served by another account than the one that built
    it."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
