"""ONNX → TensorRT engine (``.engine``): FP32, FP16, or INT8 (calibrated, or from a QDQ model).

Written to TensorRT 10's documented Python API (``Builder``, ``OnnxParser``, ``IBuilderConfig``,
optimisation profiles, timing cache); NOT YET VERIFIED ON GPU HARDWARE — this project's machine has
no GPU and ``tensorrt`` does not install here. An engine is tied to the GPU model and TensorRT
version it was built with, so it is built on the machine that serves it.

Dynamic axes get one optimisation profile: min 1, opt ``opt_batch``, max ``max_batch`` on the batch
axis (other symbolic axes: 1 / 128 / 512). The timing cache lives beside the engine, so rebuilding
for another precision or profile reuses the tactic timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import BackendUnavailable, ConversionError
from shipyard.records import Artifact, Signature

WORKSPACE_BYTES = 2 << 30


@dataclass(frozen=True)
class EngineOptions:
    precision: str = "fp32"
    """fp32 | fp16 | int8 (INT8 calibrates unless the ONNX model already holds Q/DQ nodes)."""
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 64
    timing_cache: Path | None = None


def profile_shapes(
    signature: Signature, options: EngineOptions
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """(min, opt, max) shapes per input for one optimisation profile; fixed dims stay as they
    are."""
    shapes = {}
    for spec in signature.inputs:
        per_level = []
        for batch, other in (
            (options.min_batch, 1),
            (options.opt_batch, 128),
            (options.max_batch, 512),
        ):
            per_level.append(
                tuple(
                    d if isinstance(d, int) else (batch if axis == 0 else other)
                    for axis, d in enumerate(spec.shape)
                )
            )
        shapes[spec.name] = tuple(per_level)
    return shapes


def build_engine(
    onnx: Artifact, path: Path, options: EngineOptions, calibration: Any = None
) -> Artifact:
    """Build and save an engine; ``calibration`` is a Dataset used for INT8 without Q/DQ nodes."""
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx.path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT could not parse {onnx.path.name}: {errors[:400]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    _set_precision(trt, config, options, onnx, calibration)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(onnx.signature, options).items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    cache_file = options.timing_cache or path.with_suffix(".timing-cache")
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ConversionError(
            f"TensorRT could not build a {options.precision} engine from {onnx.path.name}"
        )
    path.write_bytes(bytes(engine))
    cache_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    return Artifact(path, "tensorrt", onnx.signature)


def _set_precision(
    trt: Any, config: Any, options: EngineOptions, onnx: Artifact, calibration: Any
) -> None:
    if options.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(
            trt.BuilderFlag.FP16
        )  # layers TensorRT keeps out of INT8 may still use FP16
        if not has_qdq_nodes(onnx.path):
            if calibration is None:
                raise ConversionError(
                    "INT8 TensorRT engines need calibration data or a QDQ-quantised ONNX model"
                )
            config.int8_calibrator = make_calibrator(
                trt, calibration, onnx.path.with_suffix(".calibration")
            )
    elif options.precision != "fp32":
        raise ConversionError(
            f"TensorRT precision {options.precision!r}: expected fp32, fp16 or int8"
        )


def has_qdq_nodes(path: Path) -> bool:
    """Whether the ONNX graph is already quantised (explicit quantisation: TensorRT needs no
    calibrator)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node)


def make_calibrator(trt: Any, calibration: Any, cache_file: Path, batch: int = 8) -> Any:
    """An entropy calibrator (``IInt8EntropyCalibrator2``) feeding ``calibration`` in batches from
    GPU memory."""
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self._batches = iter(list(calibration.batches(batch)))
            self._held: list[Any] = []

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            feed = next(self._batches, None)
            if feed is None:
                return None
            self._held = [torch.from_numpy(np.ascontiguousarray(feed[n])).cuda() for n in names]
            return [t.data_ptr() for t in self._held]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_file.write_bytes(bytes(cache))

    return Calibrator()


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailable(
            "TensorRT is not installed: pip install tensorrt (needs an NVIDIA GPU, "
            "driver and CUDA 12)"
        ) from exc
    return tensorrt
