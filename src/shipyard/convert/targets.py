"""The ``convert`` recipe step for the targets beyond OpenVINO: ncnn, MNN, TVM, AOTInductor, TensorRT.

Each target says which artifact format it starts from and which converter makes it, so the
``convert`` step in ``build/artifacts.py`` only dispatches here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ConversionError
from shipyard.records import Artifact

if TYPE_CHECKING:
    from shipyard.build.artifacts import Workshop

CONVERTS_FROM = {"ncnn": "torchscript", "mnn": "onnx", "tvm": "onnx", "aoti": "torch-export", "tensorrt": "onnx"}
"""Target format → the artifact format its converter starts from."""


def convert_for_target(workshop: Workshop, previous: Artifact | None, format: str, **options) -> Artifact:
    if format not in CONVERTS_FROM:
        raise ConversionError(f"unknown conversion target {format!r}; expected openvino, "
                              f"{', '.join(CONVERTS_FROM)}")
    start = CONVERTS_FROM[format]
    if previous is None or previous.format != start:
        got = previous.format if previous else "nothing"
        raise ConversionError(f"converting to {format} needs a {start} artifact; the recipe gave it {got}")
    if format == "ncnn":
        from shipyard.convert.ncnn import convert_to_ncnn

        return convert_to_ncnn(previous, workshop.new_path(".param"), **options)
    if format == "mnn":
        from shipyard.convert.mnn import convert_to_mnn

        return convert_to_mnn(previous, workshop.new_path(".mnn"), **options)
    if format == "tvm":
        return _tvm(workshop, previous, **options)
    if format == "aoti":
        from shipyard.convert.aoti import compile_aoti

        return compile_aoti(previous, workshop.new_path(".pt2"))
    from shipyard.convert.tensorrt import EngineOptions, build_engine

    return build_engine(previous, workshop.new_path(".engine"), EngineOptions(**options), workshop.calibration)


def _tvm(workshop: Workshop, onnx: Artifact, tune_seconds: float = 0, threads: int = 1) -> Artifact:
    """TVM's default schedules, or with ``tune_seconds`` those MetaSchedule finds in that time (noted)."""
    if not tune_seconds:
        from shipyard.convert.tvm import compile_with_tvm

        return compile_with_tvm(onnx, workshop.new_path(".so"))
    import json

    from shipyard.convert.tvm import host_target
    from shipyard.convert.tvm_tune import compile_tuned, tuning_report
    from shipyard.quantize.cache import cache_key, cached

    # tuning takes minutes: a rebuild of the same model, recipe and CPU reuses the tuned library
    key = cache_key(workshop.source.content_hash, workshop.current_key, json.dumps(host_target(threads), sort_keys=True))
    fresh: list[str] = []

    def tune(path: Path) -> Artifact:
        tuned = compile_tuned(onnx, path, tune_seconds, threads)
        fresh.append(tuned.report.note())
        return tuned.artifact

    artifact = cached(key, workshop.new_path(".so"), tune)
    note = fresh[0] if fresh else tuning_report(artifact).note() + "; reused from the cache (an earlier build's tuning)"
    workshop.notes.setdefault("tvm", []).append(note)
    return artifact
