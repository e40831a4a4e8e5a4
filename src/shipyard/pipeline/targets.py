"""Deployment targets (``--target cpu|gpu|edge``): the backends and precisions each one tries.

    cpu   the CPU backends (``CPU_BACKENDS``), FP32 unless --precisions says otherwise
    edge  ncnn, MNN, TVM and ONNX Runtime; INT8 first, then FP32
    gpu   TensorRT engines and ONNX Runtime's TensorRT and CUDA providers; FP16, FP32, INT8.
          Without an NVIDIA GPU it stops at once and says what it would have done and why it cannot.

``--backends`` / ``--precisions`` given by the user always win over a target's defaults.
"""

from __future__ import annotations

from shipyard.errors import BackendUnavailable, UsageError

TARGETS = ("cpu", "gpu", "edge")
EDGE_BACKENDS = ("ncnn", "mnn", "tvm", "onnxruntime")
GPU_BACKENDS = ("tensorrt", "onnxruntime-trt", "onnxruntime-cuda")
GPU_PRECISIONS = ("fp16", "fp32", "int8")
GPU_PLAN = (
    "build TensorRT engines from the ONNX export (FP32, FP16, and INT8 calibrated on --data or "
    "taken from a QDQ model; one dynamic-batch profile 1/8/64; a timing cache beside the engine) "
    "and run the ONNX export on ONNX Runtime's TensorRT and CUDA execution providers, then keep "
    "the fastest that stays within --max-drop"
)


def resolve_target(
    target: str, backends: list[str] | None, precisions: list[str] | None
) -> tuple[list[str] | None, list[str] | None]:
    """The backends and precisions a build tries for ``target``; explicit choices are kept."""
    if target not in TARGETS:
        raise UsageError(f"--target {target!r}: expected one of {', '.join(TARGETS)}")
    if target == "cpu":
        return backends, precisions
    if target == "edge":
        return backends or list(EDGE_BACKENDS), precisions or list(EDGE_PRECISIONS)
    chosen = backends or list(GPU_BACKENDS)
    check_gpu_backends(chosen)
    return chosen, precisions or list(GPU_PRECISIONS)


EDGE_PRECISIONS = ("int8", "fp32")


def check_gpu_backends(names: list[str]) -> None:
    """Raise, saying what a GPU build would do and why it cannot, when none of ``names`` can run
    here."""
    from shipyard.backends import get_backend

    reasons = []
    for name in names:
        ok, why = get_backend(name).available()
        if ok:
            return
        reasons.append(f"{name}: {why}")
    raise BackendUnavailable(
        f"--target gpu would {GPU_PLAN}; it cannot on this machine: "
        + "; ".join(reasons)
        + ". (These GPU paths follow the documented APIs but are not yet verified on "
        "GPU hardware.)"
    )
