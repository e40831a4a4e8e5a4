"""ONNX Runtime on the CPU: FP32 (plain, onnxslim- and ORT-optimised), FP16, static and dynamic
INT8."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.backends.base import ONNX, LayerViews, Runtime, Session, fp32_onnx_recipe
from shipyard.backends.onnxruntime.smooth_quant import ALPHAS
from shipyard.records import Artifact, Candidate, Recipe

if TYPE_CHECKING:
    from shipyard.sources.base import Source
    from shipyard.workshop import Workshop


class OnnxRuntimeBackend(Runtime):
    name = "onnxruntime"
    formats = ("onnx",)
    package = "onnxruntime"
    module = "onnxruntime"
    quantizers = {"static-qdq": "onnx", "nncf-qdq": "onnx", "dynamic": "onnx", "fp16": "onnx"}
    not_planned = {
        "bf16": "ONNX Runtime's CPU provider has no BF16 MatMul/Gemm kernels (NOT_IMPLEMENTED "
        "in 1.32) and ONNX Conv takes no bfloat16, so BF16 would run as FP32"
    }

    spins = True

    def _load_impl(self, artifact: Artifact, threads: int, spin: bool = True) -> Session:
        from shipyard.backends.onnxruntime.session import OnnxRuntimeSession

        return OnnxRuntimeSession(artifact, threads, spin)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        if precision == "fp32":
            return [
                Candidate(self.name, "fp32", ONNX),
                Candidate(self.name, "fp32", ONNX.then("optimize", optimizer="onnxslim")),
                Candidate(self.name, "fp32", ONNX.then("optimize", optimizer="ort")),
            ]
        if precision == "fp16":
            return [Candidate(self.name, "fp16", ONNX.then("quantize", method="fp16"))]
        if precision == "int8" and source.text is not None:
            dynamic = Candidate(
                self.name, "int8", ONNX.then("quantize", method="dynamic", per_channel=True)
            )
            if not _has_nncf():
                return [dynamic]
            smooth = ONNX.then(
                "quantize", method="nncf-qdq", transformer=True, smooth_quant=list(ALPHAS)
            )
            return [dynamic, Candidate(self.name, "int8", smooth)]
        if precision == "int8":
            nncf = (
                [Candidate(self.name, "int8", ONNX.then("quantize", method="nncf-qdq"))]
                if _has_nncf()
                else []
            )
            return nncf + [
                Candidate(
                    self.name,
                    "int8",
                    ONNX.then(
                        "quantize",
                        method="static-qdq",
                        calibration="minmax",
                        per_channel=True,
                        moving_average=True,
                    ),
                )
            ]
        return []

    def quantize(
        self,
        workshop: Workshop,
        previous: Artifact,
        path: Path,
        method: str,
        options: dict[str, Any],
    ) -> Artifact:
        keep = list(options.get("keep_fp32", []))
        if method == "fp16":
            from shipyard.backends.onnxruntime.fp16 import convert_fp16

            return convert_fp16(previous, path)
        if method == "nncf-qdq":
            return _nncf_qdq(workshop, previous, path, options, keep)
        from shipyard.backends.onnxruntime.int8 import (
            quantize_dynamic_int8,
            quantize_static_qdq,
        )

        if method == "dynamic":
            return quantize_dynamic_int8(
                previous, path, bool(options.get("per_channel", True)), keep
            )
        return quantize_static_qdq(
            previous,
            path,
            workshop.calibration_data(),
            options.get("calibration", "minmax"),
            bool(options.get("per_channel", True)),
            keep,
            bool(options.get("moving_average", False)),
        )

    def qat_recipe(self, recipe: Recipe) -> Recipe | None:
        return recipe

    def layer_views(
        self, candidate: Candidate, workshop: Workshop, feed: dict[str, np.ndarray]
    ) -> LayerViews:
        import tempfile

        from shipyard.backends.onnxruntime.int8 import preprocess
        from shipyard.quantize.layerwise import Graph, onnx_intermediates

        onnx = workshop.make(fp32_onnx_recipe(candidate.recipe))
        with tempfile.TemporaryDirectory(prefix="shipyard-layers-") as scratch:
            prepared = preprocess(onnx.path, Path(scratch))
            # QDQ keeps node names but may fuse (Conv+Relu): read the structure from the quantised
            # model
            static = candidate.recipe.steps[-1].options.get("method") in ("static-qdq", "nncf-qdq")
            graph = Graph.of(candidate.artifact.path if static else prepared)
            reference = onnx_intermediates(prepared, feed)
        return LayerViews(graph, reference, onnx_intermediates(candidate.artifact.path, feed))


def _nncf_qdq(
    workshop: Workshop, previous: Artifact, path: Path, options: dict[str, Any], keep: list[str]
) -> Artifact:
    """NNCF's QDQ INT8; with several SmoothQuant alphas, the one chosen on held-out calibration
    samples (the choice goes into the build's notes)."""
    from shipyard.backends.onnxruntime.nncf_int8 import quantize_nncf_qdq

    alphas = options.get("smooth_quant")
    transformer = bool(options.get("transformer", False))
    if isinstance(alphas, list | tuple) and len(alphas) > 1:
        from shipyard.backends.onnxruntime.smooth_quant import quantize_smooth_quant

        artifact, choice = quantize_smooth_quant(
            previous, path, workshop.calibration_data(), tuple(alphas), keep
        )
        workshop.notes.setdefault("smooth-quant", []).append(f"onnxruntime: {choice.note()}")
        return artifact
    if isinstance(alphas, list | tuple):
        alphas = alphas[0] if alphas else None
    return quantize_nncf_qdq(previous, path, workshop.calibration_data(), transformer, keep, alphas)


def _has_nncf() -> bool:
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


BACKEND = OnnxRuntimeBackend()
