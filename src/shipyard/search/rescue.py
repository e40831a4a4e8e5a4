"""The accuracy-aware search: when an INT8 candidate misses ``--max-drop``, keep the layers that
cause the error in FP32 until it passes (mixed precision).

ONNX Runtime QDQ candidates are searched by the metric itself (``shipyard.search.sensitivity``:
layers reverted in the quantised graph, block by block, then layer by layer, then bisected), best
candidate first; a worse variant on a backend whose better one was dropped is not searched again.
The other backends use the tensor-error ranking below.

For a failed candidate the layer-by-layer comparison ranks the tensors whose quantisation adds
the most error. Keeping a tensor in FP32 means leaving its producer and its consumers
unquantised; the search keeps the worst 1, 2, 4, … tensors' layers in FP32, each attempt a
candidate of its own (precision ``mixed``, the layers named in its recipe), and stops at the first
that passes, when the time budget is spent, or when the family cannot pass (every quantised
layer would be FP32 again, or the attempts run out).

An OpenVINO NNCF candidate of a tensor model first gets one ``nncf.quantize_with_accuracy_control``
attempt (``shipyard.backends.openvino.accuracy_control``); the layer-wise search runs only if that
misses too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from shipyard.backends import get_backend
from shipyard.backends.base import fp32_onnx_recipe
from shipyard.errors import ShipyardError
from shipyard.quantize.layerwise import Graph, LayerError, rank_layers
from shipyard.records import Candidate, Recipe, Step
from shipyard.search.layer_names import layer_costs, module_paths

if TYPE_CHECKING:
    from shipyard.backends.base import Session
    from shipyard.pipeline.build import Reporter
    from shipyard.pipeline.options import SearchOptions
    from shipyard.workshop import Workshop

RESCUABLE = ("static-qdq", "nncf-qdq", "dynamic", "nncf", "ncnn-int8")
QDQ_METHODS = ("static-qdq", "nncf-qdq")
"""ONNX Runtime QDQ models: layers can be reverted in the quantised graph, so the search ranks by
the metric."""
MAX_ATTEMPTS = 5
QUANTIZED_OPS = {
    "Conv",
    "MatMul",
    "Gemm",
    "ConvTranspose",
    "Convolution",
    "ConvolutionDepthWise",
    "InnerProduct",
}
"""ONNX ops and ncnn layer types that INT8 quantises."""
Verify = Callable[[list[Candidate]], "dict[str, Session]"]


@dataclass
class Search:
    workshop: Workshop
    verify: Verify
    options: SearchOptions
    reporter: Reporter
    started: float
    dropped: dict[str, float] = field(default_factory=dict)
    """Backend → metric of the best QDQ family the metric search dropped there."""

    def out_of_time(self) -> bool:
        return self.workshop.deadline.spent()  # the build's one clock (shipyard.deadline)

    def note(self, text: str) -> None:
        self.reporter.note(text)
        self.workshop.notes.setdefault("mixed precision", []).append(text)


def rescue(
    plans: list[Candidate],
    workshop: Workshop,
    verify: Verify,
    options: SearchOptions,
    reporter: Reporter,
) -> list[Candidate]:
    """Mixed-precision candidates for every INT8 candidate that missed the budget, each verified by
    ``verify``."""
    search = Search(workshop, verify, options, reporter, time.monotonic())
    tried: list[Candidate] = []
    best_first = sorted((c for c in plans if _rescuable(c)), key=lambda c: -c.verification.value)
    for candidate in best_first:
        if any(
            c.passed and c.backend == candidate.backend and c.precision == "int8" for c in plans
        ) or any(c.passed and c.backend == candidate.backend for c in tried):
            # another INT8 (or rescued mixed) variant on this backend already holds the budget
            continue
        if search.out_of_time():
            search.note(
                f"time budget of {options.time_budget:g} s spent; {candidate.key} was not rescued"
            )
            break
        own = get_backend(candidate.backend).own_rescue(
            candidate, workshop.calibration, options.max_drop
        )
        if own is not None:
            tried.append(_own_rescue(candidate, own, search))
            if tried[-1].passed:
                continue
        if metric_search_fits(candidate, workshop):
            better = search.dropped.get(candidate.backend)
            if better is not None and better >= candidate.verification.value:
                search.note(
                    f"{candidate.key}: not searched — a better INT8 variant on "
                    f"{candidate.backend} "
                    f"({better:.2f}) was already dropped as unrescuable"
                )
                continue
            tried += _metric_rescue(candidate, search)
            continue
        reporter.stage(f"{candidate.key} missed the budget: finding the layers responsible")
        try:
            diagnosis = responsible_layers(candidate, workshop)
        except (
            Exception
        ) as exc:  # a runtime failing to expose a model's tensors is a result, not a crash
            search.note(
                f"{candidate.key}: cannot compare layer by layer ({type(exc).__name__}: "
                f"{str(exc)[:200]})"
            )
            continue
        if not candidate.layer_costs:
            paths = _module_paths(candidate, workshop)
            candidate.layer_costs = layer_costs(diagnosis.layers, paths)
            candidate.layer_modules = paths
        tried += _attempts(candidate, diagnosis, search)
    return tried


def metric_search_fits(candidate: Candidate, workshop: Workshop) -> bool:
    """ONNX Runtime QDQ candidates with enough calibration data get the metric-ranked search."""
    from shipyard.backends.openvino.accuracy_control import MIN_SAMPLES

    method = candidate.recipe.steps[-1].options.get("method")
    data = workshop.calibration
    return (
        candidate.backend == "onnxruntime"
        and method in QDQ_METHODS
        and data is not None
        and data.texts is None
        and len(data) >= MIN_SAMPLES
    )


def _metric_rescue(candidate: Candidate, search: Search) -> list[Candidate]:
    """Rank layers by what reverting them wins back in the metric, bisect, try the smallest set."""
    from shipyard.backends.openvino.accuracy_control import split_holdout
    from shipyard.search import sensitivity

    search.reporter.stage(f"{candidate.key} missed the budget: ranking its layers by the metric")
    _, holdout = split_holdout(search.workshop.calibration)
    fp32 = search.workshop.make(fp32_onnx_recipe(candidate.recipe))
    reference = sensitivity.run_first_output(fp32.path, holdout, search.options.threads)
    remaining = search.workshop.deadline.remaining()  # the build's one clock (shipyard.deadline)
    deadline = None if remaining == float("inf") else time.monotonic() + remaining
    found = sensitivity.search(
        candidate.artifact.path,
        reference,
        holdout,
        candidate.verification.metric,
        search.options.max_drop,
        deadline,
        search.options.threads,
        float_model=fp32.path,
    )
    from shipyard.search.layer_names import module_paths

    # named as the user knows them where the export recorded it, costliest first
    modules = module_paths(fp32.path)
    candidate.layer_modules = modules
    named = [dataclasses.replace(c, module=modules.get(c.layer, c.module)) for c in found.costs]
    candidate.layer_costs = sorted(named, key=lambda c: -(c.metric_cost or 0.0))
    samples = len(holdout)
    done = f"{found.probes} probes on {samples} held-out calibration samples, {found.seconds:.0f} s"
    if found.dropped:
        search.note(f"{candidate.key}: INT8 on this family dropped: {found.dropped} ({done})")
        search.dropped[candidate.backend] = max(
            search.dropped.get(candidate.backend, -1e9), candidate.verification.value
        )
        return []
    if not found.keep_fp32:
        search.note(
            f"{candidate.key}: {'; '.join(found.notes)} but not on the evaluation set "
            f"({done}); not rescued"
        )
        return []
    attempt = _mixed(candidate, found.keep_fp32)
    attempt.layer_costs = found.costs
    search.reporter.stage(f"{attempt.key}: trying with {len(found.keep_fp32)} layers in FP32")
    search.verify([attempt])
    outcome = (
        f"passes ({attempt.verification.metric} drop {attempt.verification.drop:.2f})"
        if attempt.passed
        else f"misses on the evaluation set ({attempt.why_failed})"
    )
    search.note(
        f"{candidate.key} missed the budget; the metric-ranked search keeps "
        f"{len(found.keep_fp32)} layers "
        f"in FP32 ({', '.join(found.keep_fp32)}), {outcome} ({done})"
    )
    return [attempt]


def _own_rescue(candidate: Candidate, attempt: Candidate, search: Search) -> Candidate:
    """The backend's own accuracy-aware attempt, verified on the evaluation set like the rest."""
    search.reporter.stage(
        f"{attempt.key}: reverting layers until the drop is within {search.options.max_drop:g}"
    )
    search.verify([attempt])
    outcome = (
        f"passes ({attempt.verification.metric} drop {attempt.verification.drop:.2f})"
        if attempt.passed
        else f"misses too ({attempt.why_failed})"
    )
    search.note(f"{candidate.key} missed the budget; {attempt.key} {outcome}")
    return attempt


def _rescuable(candidate: Candidate) -> bool:
    last = candidate.recipe.steps[-1] if candidate.recipe.steps else None
    return (
        candidate.precision == "int8"
        and not candidate.error
        and candidate.verification is not None
        and not candidate.verification.passed
        and last is not None
        and last.name == "quantize"
        and last.options.get("method") in RESCUABLE
        and candidate.artifact is not None
    )


def _attempts(candidate: Candidate, diagnosis: Diagnosis, search: Search) -> list[Candidate]:
    ranked = diagnosis.layers
    activations = candidate.recipe.steps[-1].options.get("method") in (
        "static-qdq",
        "nncf-qdq",
        "nncf",
    )
    quantized = {n for n, op in diagnosis.graph.ops.items() if op in QUANTIZED_OPS}
    tried: list[Candidate] = []
    count, kept = 1, set()
    while len(tried) < MAX_ATTEMPTS and count <= 2 * len(ranked):
        grown = keep_set(ranked[:count], diagnosis.graph, activations)
        count *= 2
        if grown == kept:
            continue
        kept = grown
        if quantized and quantized <= kept:
            break
        if search.out_of_time():
            search.note(
                f"time budget of {search.options.time_budget:g} s spent while rescuing "
                f"{candidate.key}"
            )
            return tried
        attempt = _mixed(candidate, sorted(kept))
        search.reporter.stage(f"{attempt.key}: trying with {len(kept)} layers in FP32")
        search.verify([attempt])
        tried.append(attempt)
        if attempt.passed:
            search.note(
                f"{candidate.key} missed the budget; keeping {len(kept)} layers in FP32 passes "
                f"({attempt.verification.metric} drop {attempt.verification.drop:.2f}): "
                f"{', '.join(sorted(kept))}"
            )
            return tried
    search.note(
        f"{candidate.key}: INT8 on this family cannot pass the budget "
        f"({len(tried)} mixed-precision attempts, up to {len(kept)} layers in FP32); stopped "
        "trying it"
    )
    return tried


def keep_set(layers: list[LayerError], graph: Graph, activations: bool = True) -> set[str]:
    """The nodes to leave in FP32 for each layer.

    With quantised activations (static INT8) that is the layer and the consumers of its output,
    so the tensor is never quantised; with weights-only or dynamic INT8, and on ncnn (which
    quantises a layer's input inside the layer), it is the nearest quantisable layer at or above
    it (a reshape after a MatMul blames the MatMul).
    """
    nodes: set[str] = set()
    for layer in layers:
        if activations:
            nodes.add(layer.node)
            nodes.update(graph.consumers.get(layer.tensor, []))
        else:
            nodes.update(_quantizable_above(graph, layer.node))
    return {n for n in nodes if n}


def _quantizable_above(graph: Graph, node: str, depth: int = 6) -> set[str]:
    if graph.ops.get(node) in QUANTIZED_OPS:
        return {node}
    if depth == 0:
        return set()
    found: set[str] = set()
    for tensor in graph.inputs.get(node, []):
        if tensor in graph.producer:
            found |= _quantizable_above(graph, graph.producer[tensor][0], depth - 1)
    return found


def _mixed(candidate: Candidate, kept: list[str]) -> Candidate:
    last = candidate.recipe.steps[-1]
    recipe = Recipe(
        candidate.recipe.steps[:-1] + (Step("quantize", {**last.options, "keep_fp32": kept}),)
    )
    name = f"{candidate.backend}/mixed+{last.options['method']}({len(kept)} layers fp32)"
    return Candidate(candidate.backend, "mixed", recipe, name=name, derived_from=candidate.key)


def _module_paths(candidate: Candidate, workshop: Workshop) -> dict[str, str]:
    """PyTorch module paths of the candidate's layers, for the report; {} where unreadable."""
    try:
        paths: dict[str, str] = {}
        prefix = fp32_onnx_recipe(candidate.recipe)
        for artifact in (workshop.make(prefix) if prefix.steps else None, candidate.artifact):
            if artifact is not None and artifact.format == "onnx":
                paths.update(module_paths(artifact.path))
        return paths
    except Exception:  # names are a courtesy: a model without them still gets its costs
        return {}


@dataclass
class Diagnosis:
    graph: Graph
    layers: list[LayerError]
    """Layers that add error, worst first."""
    outputs: dict[str, LayerError] = field(default_factory=dict)
    """The model outputs' own rows (their cosine is the whole model's)."""


def responsible_layers(candidate: Candidate, workshop: Workshop, samples: int = 16) -> Diagnosis:
    """The layers of ``candidate`` worst first, compared with its FP32 prefix on calibration
    samples."""
    views = get_backend(candidate.backend).layer_views(
        candidate, workshop, sample_feed(workshop.calibration, samples)
    )
    return _diagnosis(candidate, views.graph, views.reference, views.quantized)


def _diagnosis(
    candidate: Candidate,
    graph: Graph,
    reference: dict[str, np.ndarray],
    quantized: dict[str, np.ndarray],
) -> Diagnosis:
    ranked = rank_layers(graph, reference, quantized)
    outputs = {r.tensor: r for r in ranked if r.tensor in candidate.artifact.signature.output_names}
    return Diagnosis(graph, [r for r in ranked if r.introduced > 1e-3], outputs)


def sample_feed(dataset, samples: int) -> dict[str, np.ndarray]:
    """A few samples of ``dataset``, fewer for big inputs so every tensor fits in memory."""
    from shipyard.verify.reference import trim_padding

    if dataset is None or len(dataset) == 0:
        raise ShipyardError("a layer-by-layer comparison needs data; pass --data")
    per_sample = sum(int(np.prod(v.shape[1:])) for v in dataset.inputs.values())
    count = max(1, min(samples, len(dataset), 2_000_000 // max(per_sample * 64, 1) or 1))
    return trim_padding(next(dataset.batches(count)))
