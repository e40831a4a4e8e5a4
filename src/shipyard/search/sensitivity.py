"""Which layers actually cost the metric: a rescue search ranked by the metric itself.

A tensor-error ranking does not predict the metric on real networks (on MobileNetV2, 31 of 52
layers reverted by error recovered almost nothing), so every probe here is the build's own metric
on held-out calibration samples, with layers put back in float in the quantised QDQ model
(``shipyard.search.qdq_revert``: no recalibration per probe; a reverted layer takes the float
model's own weights, as the mixed-precision model that ships will):

1. **blocks** — the quantised layers in graph order are cut into a few consecutive blocks; each
   block alone is reverted and what it wins back is recorded;
2. **layers** — inside the blocks that win the most, each layer alone is reverted;
3. **bisect** — layers ordered by what they won (measured layers first, then by their block's
   share), Polygraphy ``debug precision``-style: binary search for the shortest prefix of that
   order whose reversion meets the budget.

A family is dropped early, with the reason, when reverting every block that helps still misses
the budget, or when passing needs more than half the layers in FP32 (no speed would be left).

Every probe becomes a ``LayerCost`` with ``metric_cost`` = the points reverting it won back (a
block's ``op_type`` reads ``block of N``); ``error`` and ``cosine`` stay 0 — only the metric is
measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.dataset import Dataset
from shipyard.records import LayerCost
from shipyard.search.qdq_revert import QdqLayer, float_initializers, quantized_layers, revert

BLOCKS = 8
REFINED_BLOCKS = 2
MAX_FP32_SHARE = 0.5


@dataclass
class SearchResult:
    keep_fp32: list[str]
    """Layers to keep in FP32 (empty when the family was dropped)."""
    costs: list[LayerCost]
    probes: int
    seconds: float
    quantized_score: float
    reference_score: float
    dropped: str = ""
    """Why the family was given up, when it was."""
    notes: list[str] = field(default_factory=list)


class Prober:
    """The metric of the QDQ model with some layers reverted, on a fixed held-out set."""

    def __init__(
        self,
        model: Any,
        reference_outputs: np.ndarray,
        holdout: Dataset,
        metric: str,
        threads: int = 1,
        floats: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.model, self.reference, self.holdout = model, reference_outputs, holdout
        self.floats = floats or {}
        self.metric = "agreement" if metric == "accuracy" and holdout.labels is None else metric
        self.threads, self.probes = threads, 0

    def score(self, reverted: set[str]) -> float:
        self.probes += 1
        output = run_first_output(
            revert(self.model, reverted, self.floats) if reverted else self.model,
            self.holdout,
            self.threads,
        )
        return float(per_sample(self.metric, self.reference, output, self.holdout.labels).mean())

    def reference_score(self) -> float:
        return float(
            per_sample(self.metric, self.reference, self.reference, self.holdout.labels).mean()
        )


def per_sample(
    metric: str, reference: np.ndarray, output: np.ndarray, labels: np.ndarray | None
) -> np.ndarray:
    """Each sample's share of ``metric`` in points (their mean is the metric)."""
    from shipyard.verify.metrics import row_cosine, top1

    if metric == "accuracy":
        return (top1(output) == labels) * 100.0
    if metric == "agreement":
        return (top1(output) == top1(reference)) * 100.0
    return row_cosine(reference, output) * 100.0


def run_first_output(model: Any, data: Dataset, threads: int = 1) -> np.ndarray:
    """The first output of an ONNX model (proto or path) over ``data``, batches of 16."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    payload = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, feed)[0] for feed in data.batches(16)])


def search(
    quantized: Path,
    prober_reference: np.ndarray,
    holdout: Dataset,
    metric: str,
    max_drop: float,
    deadline: float | None = None,
    threads: int = 1,
    float_model: Path | None = None,
) -> SearchResult:
    """The layers of the QDQ model at ``quantized`` to keep in FP32 so ``metric`` drops ≤
    ``max_drop``; reverted layers take their weights from ``float_model``, the model that was
    quantised."""
    import onnx

    started = time.monotonic()
    model = onnx.load(str(quantized))
    floats = float_initializers(onnx.load(str(float_model))) if float_model else None
    prober = Prober(model, prober_reference, holdout, metric, threads, floats)
    layers = quantized_layers(model)
    reference, base = prober.reference_score(), prober.score(set())
    result = SearchResult([], [], 0, 0.0, base, reference)
    target = reference - max_drop
    if base >= target or not layers:
        result.notes.append("the quantised model already meets the budget on the held-out samples")
        return _finish(result, prober, started)
    blocks = _blocks(layers)
    block_gain = {i: prober.score({l.name for l in block}) - base for i, block in enumerate(blocks)}
    result.costs += [_block_cost(block, block_gain[i]) for i, block in enumerate(blocks)]
    helpful = {l.name for i, b in enumerate(blocks) if block_gain[i] > 0 for l in b}
    if not helpful or prober.score(helpful) < target:
        result.dropped = (
            f"reverting every block that helps ({len(helpful)} of {len(layers)} layers) still "
            "misses "
            f"the budget on held-out samples: the error is spread over the whole network"
        )
        return _finish(result, prober, started)
    layer_gain = _refine(blocks, block_gain, base, prober, deadline)
    result.costs += [
        LayerCost(l.name, l.op_type, 0.0, 0.0, metric_cost=g) for l, g in layer_gain.items()
    ]
    order = _order(blocks, block_gain, layer_gain)
    count = _bisect(order, target, prober, deadline)
    if count is None or count > MAX_FP32_SHARE * len(layers):
        kept = "no prefix" if count is None else f"{count} of {len(layers)} layers"
        result.dropped = (
            f"passing needs {kept} in FP32 on held-out samples: no INT8 speed would be left"
        )
        return _finish(result, prober, started)
    result.keep_fp32 = [l.name for l in order[:count]]
    return _finish(result, prober, started)


def _finish(result: SearchResult, prober: Prober, started: float) -> SearchResult:
    result.probes, result.seconds = prober.probes, time.monotonic() - started
    result.costs.sort(key=lambda c: c.metric_cost or 0.0, reverse=True)
    return result


def _blocks(layers: list[QdqLayer]) -> list[list[QdqLayer]]:
    count = min(BLOCKS, len(layers))
    return [
        list(part) for part in np.array_split(np.array(layers, dtype=object), count) if len(part)
    ]


def _block_cost(block: list[QdqLayer], gain: float) -> LayerCost:
    name = block[0].name if len(block) == 1 else f"{block[0].name}…{block[-1].name}"
    kind = f"block of {len(block)}" if len(block) > 1 else block[0].op_type
    return LayerCost(name, kind, 0.0, 0.0, metric_cost=gain)


def _refine(
    blocks: list[list[QdqLayer]],
    block_gain: dict[int, float],
    base: float,
    prober: Prober,
    deadline: float | None,
) -> dict[QdqLayer, float]:
    """Each layer of the most costly blocks reverted alone: what it wins back."""
    worst = sorted(block_gain, key=block_gain.get, reverse=True)[:REFINED_BLOCKS]
    gains: dict[QdqLayer, float] = {}
    for index in worst:
        if block_gain[index] <= 0 or len(blocks[index]) == 1:
            continue
        for layer in blocks[index]:
            if deadline is not None and time.monotonic() > deadline:
                return gains
            gains[layer] = prober.score({layer.name}) - base
    return gains


def _order(
    blocks: list[list[QdqLayer]], block_gain: dict[int, float], layer_gain: dict[QdqLayer, float]
) -> list[QdqLayer]:
    """Layers most worth reverting first: by their own measured gain, else their block's share."""

    def worth(item: tuple[int, int, QdqLayer]) -> tuple[float, int]:
        block, position, layer = item
        share = layer_gain.get(layer, block_gain[block] / len(blocks[block]))
        return (-share, position)

    items = [(b, p, layer) for b, block in enumerate(blocks) for p, layer in enumerate(block)]
    return [layer for _, _, layer in sorted(items, key=worth)]


def _bisect(
    order: list[QdqLayer], target: float, prober: Prober, deadline: float | None
) -> int | None:
    """The shortest prefix of ``order`` whose reversion scores ≥ ``target`` (binary search)."""
    low, high = 0, len(order)  # invariant: prefix ``high`` passes (everything in FP32 does)
    while high - low > 1:
        if deadline is not None and time.monotonic() > deadline:
            break
        middle = (low + high) // 2
        if prober.score({l.name for l in order[:middle]}) >= target:
            high = middle
        else:
            low = middle
    return high if high < len(order) else None
