"""The ``convert`` and ``quantize`` recipe steps, each done by the backend that owns the format or
method.

``convert(format=ncnn)`` goes to the backend whose ``converts`` names ``ncnn``, from the artifact
format it starts from; ``quantize(method=static-qdq, …)`` to the backend whose ``quantizers`` name
the method. Quantised artifacts are cached by source, recipe prefix, calibration data and the
converter/quantiser code (``shipyard.quantize.cache``).
"""

from __future__ import annotations

from shipyard.backends import all_backends, converter_for, quantizer_for
from shipyard.errors import ConversionError
from shipyard.records import Artifact
from shipyard.workshop import Workshop, step


@step("convert")
def convert_step(workshop: Workshop, previous: Artifact | None, format: str, **options) -> Artifact:
    """``convert(format=…)``: done by the backend that owns that format, from the format it starts
    from."""
    backend = converter_for(format)
    if backend is None:
        known = sorted(f for b in all_backends() for f in b.converts)
        raise ConversionError(
            f"unknown conversion target {format!r}; expected one of {', '.join(known)}"
        )
    start = backend.converts[format]
    if previous is None or previous.format != start:
        got = previous.format if previous else "nothing"
        raise ConversionError(
            f"converting to {format} needs a {start} artifact; the recipe gave it {got}"
        )
    return backend.convert(workshop, previous, format, **options)


QUANTIZED_SUFFIX = {"onnx": ".onnx", "openvino": ".xml", "ncnn": ".param"}
UNCALIBRATED = ("dynamic", "fp16", "nncf-weights")
"""Methods that need no calibration data (their artifacts are cached without a data hash)."""


@step("quantize")
def quantize_step(
    workshop: Workshop, previous: Artifact | None, method: str, **options
) -> Artifact:
    """``quantize(method=…)``: done by the backend that owns the method, each artifact cached."""
    from shipyard.quantize.cache import cache_key, cached

    backend = quantizer_for(method)
    if backend is None:
        raise ConversionError(
            f"unknown quantisation method {method!r}; expected one of {', '.join(methods())}"
        )
    if previous is None:
        raise ConversionError(
            "quantize needs an exported model before it; the recipe gave it nothing"
        )
    want = backend.quantizers[method]
    if previous.format != want:
        raise ConversionError(
            f"quantize(method={method}) needs a {want} artifact; the recipe gave it "
            f"{previous.format}"
        )
    key = cache_key(
        workshop.source.content_hash, workshop.current_key, _data_hash(workshop, method)
    )
    return cached(
        key,
        workshop.new_path(QUANTIZED_SUFFIX[want]),
        lambda path: backend.quantize(workshop, previous, path, method, options),
    )


def methods() -> list[str]:
    """Every quantisation method some backend owns."""
    return sorted(m for b in all_backends() for m in b.quantizers)


def _data_hash(workshop: Workshop, method: str) -> str:
    if method in UNCALIBRATED or workshop.calibration is None:
        return "-"
    from shipyard.verify.reference import dataset_hash

    return dataset_hash(workshop.calibration)
