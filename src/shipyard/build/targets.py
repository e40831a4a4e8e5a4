"""Deployment targets (``--target cpu|gpu|edge``) and the FP32 plans of the edge, libtorch and GPU backends.

    cpu   the CPU backends (``CPU_BACKENDS``), FP32 unless --precisions says otherwise
    edge  ncnn, MNN, TVM and ONNX Runtime; INT8 first (when the int8 planner is installed), then FP32
    gpu   TensorRT engines and ONNX Runtime's TensorRT and CUDA providers; FP16, FP32, INT8.
          Without an NVIDIA GPU it stops at once and says what it would have done and why it cannot.

``--backends`` / ``--precisions`` given by the user always win over a target's defaults.
"""

from __future__ import annotations

import importlib.util

from shipyard.build.plan import ONNX, PLANNER_MODULES, PRECISION_PLANNERS
from shipyard.errors import BackendUnavailable, UsageError
from shipyard.records import Candidate, Recipe
from shipyard.sources.base import Source

TARGETS = ("cpu", "gpu", "edge")
EDGE_BACKENDS = ("ncnn", "mnn", "tvm", "onnxruntime")
GPU_BACKENDS = ("tensorrt", "onnxruntime-trt", "onnxruntime-cuda")
GPU_PRECISIONS = ("fp16", "fp32", "int8")
NCNN = Recipe().then("export", format="torchscript").then("convert", format="ncnn")
GPU_PLAN = ("build TensorRT engines from the ONNX export (FP32, FP16, and INT8 calibrated on --data or "
            "taken from a QDQ model; one dynamic-batch profile 1/8/64; a timing cache beside the engine) "
            "and run the ONNX export on ONNX Runtime's TensorRT and CUDA execution providers, then keep "
            "the fastest that stays within --max-drop")


def resolve_target(target: str, backends: list[str] | None,
                   precisions: list[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """The backends and precisions a build tries for ``target``; explicit choices are kept."""
    if target not in TARGETS:
        raise UsageError(f"--target {target!r}: expected one of {', '.join(TARGETS)}")
    if target == "cpu":
        return backends, precisions
    if target == "edge":
        return backends or list(EDGE_BACKENDS), precisions or edge_precisions()
    chosen = backends or list(GPU_BACKENDS)
    check_gpu_backends(chosen)
    return chosen, precisions or list(GPU_PRECISIONS)


def edge_precisions() -> list[str]:
    """INT8 first when an int8 planner is installed (it may still plan nothing for some backends)."""
    module = PLANNER_MODULES.get("int8", "")
    has_int8 = "int8" in PRECISION_PLANNERS or (bool(module) and importlib.util.find_spec(module) is not None)
    return ["int8", "fp32"] if has_int8 else ["fp32"]


def check_gpu_backends(names: list[str]) -> None:
    """Raise, saying what a GPU build would do and why it cannot, when none of ``names`` can run here."""
    from shipyard.backends import get_backend

    reasons = []
    for name in names:
        ok, why = get_backend(name).available()
        if ok:
            return
        reasons.append(f"{name}: {why}")
    raise BackendUnavailable(f"--target gpu would {GPU_PLAN}; it cannot on this machine: " + "; ".join(reasons)
                             + ". (These GPU paths follow the documented APIs but are not yet verified on "
                             "GPU hardware.)")


def target_fp32_plans(source: Source, backend: str) -> list[Candidate]:
    """FP32 candidates for the backends ``build.plan.fp32_plans`` does not know itself."""
    if backend == "ncnn":
        return [Candidate("ncnn", "fp32", NCNN)] if ncnn_can_take(source) else []
    if backend in ("mnn", "tvm"):
        return [Candidate(backend, "fp32", ONNX.then("convert", format=backend))]
    if backend == "aoti":
        return [Candidate("aoti", "fp32", Recipe().then("export", format="torch-export")
                          .then("convert", format="aoti"))] if source.kind == "torch" else []
    if backend == "tensorrt":
        return tensorrt_plans("fp32")
    if backend in ("onnxruntime-cuda", "onnxruntime-trt"):
        return [Candidate(backend, "fp32", ONNX)]
    return []


def target_precision_plans(source: Source, backend: str, precision: str) -> list[Candidate]:
    """FP16/INT8 candidates of these backends, for the quantisation planners to return.

    MNN: FP16 or INT8 *weights* (its converter's ``--fp16`` / ``--weightQuantBits 8``; computed in
    float on x86). TensorRT: FP16 engines, INT8 engines calibrated on the build's data. ncnn: INT8
    weights and activation scales calibrated on the build's data (``shipyard.quantize.ncnn_int8``).
    TVM: none yet.
    """
    if backend == "mnn" and precision in ("fp16", "int8"):
        option = {"fp16": True} if precision == "fp16" else {"weight_bits": 8}
        return [Candidate("mnn", precision, ONNX.then("convert", format="mnn", **option))]
    if backend == "tensorrt" and precision in ("fp16", "int8"):
        return tensorrt_plans(precision)
    if backend == "ncnn" and precision == "int8":
        return [Candidate("ncnn", "int8", NCNN.then("quantize", method="ncnn-int8", calibration="entropy"))] \
            if ncnn_can_take(source) else []
    return []


def tensorrt_plans(precision: str) -> list[Candidate]:
    """A TensorRT engine at ``precision`` (fp32, fp16, or int8 with the build's calibration data)."""
    return [Candidate("tensorrt", precision, ONNX.then("convert", format="tensorrt", precision=precision))]


def ncnn_can_take(source: Source) -> bool:
    """pnnx converts PyTorch (not ONNX) models, and ncnn blobs are float tensors without text frontends."""
    return (source.kind in ("torch", "torchscript") and source.text is None
            and all(spec.dtype.startswith("float") for spec in source.signature.inputs))


def with_tuned_tvm(plans: list[Candidate], tune_seconds: float, threads: int) -> list[Candidate]:
    """``plans`` with a MetaSchedule-tuned TVM candidate after each untuned FP32 one (``--tune-seconds``)."""
    seconds = int(tune_seconds) if float(tune_seconds).is_integer() else tune_seconds
    planned = []
    for plan in plans:
        planned.append(plan)
        if plan.backend == "tvm" and plan.precision == "fp32" and not plan.name:
            *made, convert = plan.recipe.steps
            recipe = Recipe(tuple(made)).then(convert.name, **convert.options, tune_seconds=seconds, threads=threads)
            planned.append(Candidate("tvm", "fp32", recipe, name=f"tvm/fp32+tuned-{seconds}s"))
    return planned
