"""OpenVINO on the CPU: IR converted from ONNX, FP16 weights, NNCF INT8 (plain, weight-only, accuracy control)."""

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
    converts = {"openvino": "onnx"}
    quantizers = {"nncf": "openvino", "nncf-weights": "openvino", "nncf-accuracy-control": "openvino"}


    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.openvino.session import OpenVinoSession

        return OpenVinoSession(artifact, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        text = source.text is not None
        if precision == "fp32":
            return [Candidate(self.name, "fp32", OPENVINO)]
        if precision == "fp16":
            return [Candidate(self.name, "fp16", ONNX.then("convert", format="openvino", compress_to_fp16=True))]
        if precision != "int8":
            return []
        plans = [Candidate(self.name, "int8", OPENVINO.then("quantize", method="nncf", transformer=text))]
        if text:
            plans.append(Candidate(self.name, "int8", OPENVINO.then("quantize", method="nncf-weights")))
        return plans

    def convert(self, workshop: Workshop, previous: Artifact, format: str, **options: Any) -> Artifact:
        from shipyard.backends.openvino.convert import convert_to_openvino

        return convert_to_openvino(previous, workshop.new_path(".xml"), **options)

    def quantize(self, workshop: Workshop, previous: Artifact, path: Path, method: str,
                 options: dict[str, Any]) -> Artifact:
        if method == "nncf-accuracy-control":
            from shipyard.backends.openvino.accuracy_control import (
                quantize_accuracy_control,
            )

            return quantize_accuracy_control(previous, path, workshop.calibration_data(),
                                             options.get("metric", "agreement"), float(options.get("max_drop", 1.0)))
        from shipyard.backends.openvino.int8 import quantize_nncf

        weights_only = method == "nncf-weights"
        return quantize_nncf(previous, path, None if weights_only else workshop.calibration_data(),
                             bool(options.get("transformer", False)), list(options.get("keep_fp32", [])),
                             weights_only=weights_only)

    def qat_recipe(self, recipe: Recipe) -> Recipe | None:
        return recipe.then("convert", format="openvino")

    def own_rescue(self, candidate: Candidate, calibration: Any, max_drop: float) -> Candidate | None:
        from shipyard.backends.openvino import accuracy_control

        if not accuracy_control.fits(candidate, calibration):
            return None
        return accuracy_control.attempt(candidate, candidate.verification.metric, max_drop)

    def layer_views(self, candidate: Candidate, workshop: Workshop, feed: dict[str, np.ndarray]) -> LayerViews:
        from shipyard.backends.openvino.layers import openvino_intermediates
        from shipyard.quantize.layerwise import Graph

        graph = Graph.of(workshop.make(fp32_onnx_recipe(candidate.recipe)).path)
        ir = workshop.make(Recipe(candidate.recipe.steps[:-1]))
        names = set(graph.producer)
        return LayerViews(graph, openvino_intermediates(ir.path, feed, names),
                          openvino_intermediates(candidate.artifact.path, feed, names))


BACKEND = OpenVinoBackend()
