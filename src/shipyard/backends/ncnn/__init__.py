"""ncnn (Tencent) on the CPU: pnnx-converted ``.param`` + ``.bin``, FP32 or INT8 calibrated by
Shipyard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.backends.base import LayerViews, Runtime, Session
from shipyard.records import Artifact, Candidate, Recipe

if TYPE_CHECKING:
    from shipyard.sources.base import Source
    from shipyard.workshop import Workshop

NCNN = Recipe().then("export", format="torchscript").then("convert", format="ncnn")


def ncnn_can_take(source: Source) -> bool:
    """pnnx converts PyTorch (not ONNX) models, and ncnn blobs are float tensors without text
    frontends."""
    return (
        source.kind in ("torch", "torchscript")
        and source.text is None
        and all(spec.dtype.startswith("float") for spec in source.signature.inputs)
    )


class NcnnBackend(Runtime):
    name = "ncnn"
    formats = ("ncnn",)
    package = "ncnn"
    module = "ncnn"
    converts = {"ncnn": "torchscript"}
    quantizers = {"ncnn-int8": "ncnn"}

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        from shipyard.backends.ncnn.session import NcnnSession

        return NcnnSession(artifact, threads)

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        if not ncnn_can_take(source):
            return []
        if precision == "fp32":
            return [Candidate(self.name, "fp32", NCNN)]
        if precision == "int8":
            return [
                Candidate(
                    self.name,
                    "int8",
                    NCNN.then("quantize", method="ncnn-int8", calibration="entropy"),
                )
            ]
        return []

    def convert(
        self, workshop: Workshop, previous: Artifact, format: str, **options: Any
    ) -> Artifact:
        from shipyard.backends.ncnn.convert import convert_to_ncnn

        return convert_to_ncnn(previous, workshop.new_path(".param"), **options)

    def quantize(
        self,
        workshop: Workshop,
        previous: Artifact,
        path: Path,
        method: str,
        options: dict[str, Any],
    ) -> Artifact:
        from shipyard.backends.ncnn.int8 import quantize_ncnn_int8

        return quantize_ncnn_int8(
            previous,
            path,
            workshop.calibration_data(),
            options.get("calibration", "entropy"),
            list(options.get("keep_fp32", [])),
        )

    def layer_views(
        self, candidate: Candidate, workshop: Workshop, feed: dict[str, np.ndarray]
    ) -> LayerViews:
        from shipyard.backends.ncnn.layers import ncnn_graph, ncnn_intermediates

        reference = ncnn_intermediates(workshop.make(Recipe(candidate.recipe.steps[:-1])), feed)
        return LayerViews(
            ncnn_graph(candidate.artifact.path),
            reference,
            ncnn_intermediates(candidate.artifact, feed),
        )


BACKEND = NcnnBackend()
