"""Root cause on demand: quantise a model and show, layer by layer, where its error appears.

Example::

    >>> from shipyard.search.debug_precision import debug_precision
    >>> report = debug_precision("model.py:make", data=Path("data.npz"),  # doctest: +SKIP
    ...                          weights=Path("w.safetensors"))
    >>> report.layers[0].node  # doctest: +SKIP
    'node_Conv_28'
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import UsageError
from shipyard.quantize.layerwise import LayerError
from shipyard.records import Candidate, Recipe, Step


def debuggable() -> dict[str, tuple[str, ...]]:
    """Backend → the INT8 methods whose layers it can compare one by one (``--backend`` /
    ``--method``)."""
    from shipyard.backends import all_backends
    from shipyard.search.rescue import RESCUABLE

    found = {
        b.name: tuple(m for m in b.quantizers if m in RESCUABLE)
        for b in all_backends()
        if b.compares_layers
    }
    return {name: methods for name, methods in found.items() if methods}


@dataclass
class PrecisionReport:
    candidate: str
    backend: str
    samples: int
    layers: list[LayerError] = field(default_factory=list)
    """Layers that add error, worst first."""
    output_cosine: float | None = None


def debug_precision(
    model: str,
    data: Path | None,
    weights: Path | None = None,
    backend: str = "onnxruntime",
    method: str | None = None,
    calibration: str = "minmax",
    samples: int = 16,
    calibration_size: int = 300,
) -> PrecisionReport:
    """Quantise ``model`` for ``backend`` on ``data`` and compare it with FP32 layer by layer."""
    from shipyard.backends import get_backend
    from shipyard.dataset import ImageOptions
    from shipyard.inputs import hints_from_npz, load_build_data
    from shipyard.quantize.calibration import calibration_set
    from shipyard.search.rescue import responsible_layers
    from shipyard.sources import load_source
    from shipyard.workshop import Workshop

    methods = debuggable()
    if backend not in methods:
        raise UsageError(f"--backend {backend!r}: expected one of {', '.join(methods)}")
    source = load_source(model, weights, hints_from_npz(data), None)
    dataset = load_build_data(data, source, ImageOptions())
    candidate = _candidate(
        get_backend(backend).plans(source, "int8"), methods[backend], method, calibration
    )
    with tempfile.TemporaryDirectory(prefix="shipyard-debug-") as work:
        workshop = Workshop(
            source, Path(work), calibration_set(dataset, None, calibration_size).dataset
        )
        candidate.artifact = workshop.make(candidate.recipe)
        diagnosis = responsible_layers(candidate, workshop, samples)
    first = diagnosis.outputs.get(source.signature.output_names[0])
    return PrecisionReport(
        candidate.key,
        backend,
        min(samples, len(dataset)),
        diagnosis.layers,
        first.cosine if first else None,
    )


def _candidate(
    plans: list[Candidate], methods: tuple[str, ...], method: str | None, calibration: str
) -> Candidate:
    # ORT's own quantiser by default: --calibration picks its method
    wanted = method or "static-qdq"
    plan = next((p for p in plans if p.recipe.steps[-1].options.get("method") == wanted), plans[0])
    backend = plan.backend
    if method is not None and method not in methods:
        raise UsageError(
            f"--method {method!r} does not run on {backend}; expected one of {', '.join(methods)}"
        )
    last = plan.recipe.steps[-1]
    options = {**last.options, "method": method or last.options["method"]}
    if options["method"] in ("static-qdq", "ncnn-int8"):
        options["calibration"] = calibration
    if options["method"] == "dynamic":
        options.pop("calibration", None)
    return Candidate(backend, "int8", Recipe(plan.recipe.steps[:-1] + (Step("quantize", options),)))
