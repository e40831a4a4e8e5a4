"""OpenVINO on the CPU: IR converted from ONNX, FP16 weights, NNCF INT8 (plain, weight-only,
accuracy control)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.backends.base import ONNX, LayerViews, Runtime, Session, fp32_onnx_recipe
from shipyard.records import Artifact, Candidate, Recipe

if TYPE_CHECKING:
    from shipyard.sources.base import Source
    from shipyard.workshop import Workshop

OPENVINO = ONNX.then("convert", format="openvino")


class OpenVinoBackend(Runtime):
    name = "openvino"
    formats = ("openvino", "onnx")
    package = "openvino"
    module = "openvino"
    without_native_precision = "OpenVINO runs it in FP32"
    converts = {"openvino": "onnx"}
    quantizers = {
        "nncf": "openvino",
        "nncf-weights": "openvino",
        "nncf-accuracy-control": "openvino",
    }
    runtime_options = ("inference_precision",)

    def _load_impl(
        self, artifact: Artifact, threads: int, inference_precision: str = "f32"
    ) -> Session:
        from shipyard.backends.openvino.session import OpenVinoSession

        return OpenVinoSession(artifact, threads, inference_precision)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        """FP32 runs f32 (OpenVINO's own default is bf16 on BF16 CPUs); BF16 and native FP16 run the
        same FP32 IR with another inference precision, so they share its conversion."""
        text = source.text is not None
        if precision == "fp32":
            return [Candidate(self.name, "fp32", OPENVINO, runtime={"inference_precision": "f32"})]
        if precision == "bf16":
            return [Candidate(self.name, "bf16", OPENVINO, runtime={"inference_precision": "bf16"})]
        if precision == "fp16":
            weights = Candidate(
                self.name, "fp16", ONNX.then("convert", format="openvino", compress_to_fp16=True)
            )
            return [weights] + (
                [
                    Candidate(
                        self.name,
                        "fp16",
                        OPENVINO,
                        runtime={"inference_precision": "f16"},
                        name="openvino/fp16+f16-compute",
                    )
                ]
                if native_fp16()
                else []
            )
        if precision != "int8":
            return []
        plans = [
            Candidate(self.name, "int8", OPENVINO.then("quantize", method="nncf", transformer=text))
        ]
        if text:
            plans.append(
                Candidate(self.name, "int8", OPENVINO.then("quantize", method="nncf-weights"))
            )
        return plans

    def convert(
        self, workshop: Workshop, previous: Artifact, format: str, **options: Any
    ) -> Artifact:
        from shipyard.backends.openvino.convert import convert_to_openvino

        return convert_to_openvino(previous, workshop.new_path(".xml"), **options)

    def quantize(
        self,
        workshop: Workshop,
        previous: Artifact,
        path: Path,
        method: str,
        options: dict[str, Any],
    ) -> Artifact:
        if method == "nncf-accuracy-control":
            from shipyard.backends.openvino.accuracy_control import (
                quantize_accuracy_control,
            )

            return quantize_accuracy_control(
                previous,
                path,
                workshop.calibration_data(),
                options.get("metric", "agreement"),
                float(options.get("max_drop", 1.0)),
                workshop.deadline,
            )
        from shipyard.backends.openvino.int8 import quantize_nncf

        weights_only = method == "nncf-weights"
        return quantize_nncf(
            previous,
            path,
            None if weights_only else workshop.calibration_data(),
            bool(options.get("transformer", False)),
            list(options.get("keep_fp32", [])),
            weights_only=weights_only,
        )

    def qat_recipe(self, recipe: Recipe) -> Recipe | None:
        return recipe.then("convert", format="openvino")

    def own_rescue(
        self, candidate: Candidate, calibration: Any, max_drop: float
    ) -> Candidate | None:
        from shipyard.backends.openvino import accuracy_control

        if not accuracy_control.fits(candidate, calibration):
            return None
        return accuracy_control.attempt(candidate, candidate.verification.metric, max_drop)

    def layer_views(
        self, candidate: Candidate, workshop: Workshop, feed: dict[str, np.ndarray]
    ) -> LayerViews:
        from shipyard.backends.openvino.layers import openvino_intermediates
        from shipyard.quantize.layerwise import Graph

        graph = Graph.of(workshop.make(fp32_onnx_recipe(candidate.recipe)).path)
        ir = workshop.make(Recipe(candidate.recipe.steps[:-1]))
        names = set(graph.producer)
        return LayerViews(
            graph,
            openvino_intermediates(ir.path, feed, names),
            openvino_intermediates(candidate.artifact.path, feed, names),
        )


def native_fp16() -> bool:
    """Whether this CPU computes in FP16 (AVX512-FP16 / AMX-FP16); elsewhere f16 would run as
    f32."""
    from shipyard.quantize.auto import FP16_FEATURES, cpu_flags

    return any(f in cpu_flags() for f in FP16_FEATURES)


BACKEND = OpenVinoBackend()
