"""Why INT8 missed: per quantised family, what the search measured and what FP32 layers bought."""

from __future__ import annotations

from collections.abc import Callable

from shipyard.package.report.format import DASH, esc, ms, num
from shipyard.package.report.table import output_errors
from shipyard.records import Candidate

HOW = (
    "Each layer's output was compared with FP32's on calibration samples; <i>error added</i> is "
    "the mean "
    "per-channel relative error of the layer's output minus the largest error among its inputs — "
    "the error "
    "quantising that layer introduces — and <i>cosine</i> is its output's cosine similarity with "
    "FP32. "
    "The search keeps the worst 1, 2, 4, … layers in FP32 and stops at the first attempt that "
    "passes."
)


def families(candidates: list[Candidate]) -> list[tuple[Candidate, list[Candidate]]]:
    """Each INT8 candidate as first made, with the attempts derived from it (its own and theirs)."""
    children: dict[str, list[Candidate]] = {}
    for c in candidates:
        if c.derived_from:
            children.setdefault(c.derived_from, []).append(c)
    roots = [c for c in candidates if c.precision == "int8" and not c.derived_from]
    return [(root, _descendants(root, children)) for root in roots]


def _descendants(root: Candidate, children: dict[str, list[Candidate]]) -> list[Candidate]:
    found, todo = [], list(children.get(root.key, []))
    while todo:
        c = todo.pop(0)
        found.append(c)
        todo += children.get(c.key, [])
    return found


def int8_section(candidates: list[Candidate], speedup: Callable[[Candidate], float | None]) -> str:
    groups = families(candidates)
    if not groups:
        return ""
    return "<h2 id='int8'>INT8: what the quantised families cost</h2>" + "".join(
        _family(root, attempts, speedup) for root, attempts in groups
    )


def _family(
    root: Candidate, attempts: list[Candidate], speedup: Callable[[Candidate], float | None]
) -> str:
    rescued = next((a for a in attempts if a.passed), None)
    if root.passed:
        verdict = "passed as first made; no search was needed"
    elif rescued:
        verdict = f"missed the budget; <b>{esc(rescued.key)}</b> passes"
    elif root.error:
        verdict = "could not be built or run"
    else:
        verdict = "missed the budget, and no attempt brought it back inside"
    parts = [
        f"<section class='family'><h3>{esc(root.key)}</h3><p>{verdict}. {_metric_line(root)}</p>"
    ]
    if root.error:
        parts.append(f"<p class='reason'>{esc(root.error)}</p>")
    if root.verification and root.verification.outputs:
        parts.append(
            "<h4>Output error statistics (against the source model, evaluation set)</h4>"
            + output_errors([root, *attempts])
        )
    names = {
        **root.layer_modules,
        **{cost.layer: cost.module for cost in root.layer_costs if cost.module},
    }
    parts.append(_sensitivity(root) if root.layer_costs else _no_sensitivity(root))
    if attempts:
        parts.append(_attempts(root, attempts, names, speedup))
    return "".join(parts) + "</section>"


def _metric_line(c: Candidate) -> str:
    v = c.verification
    if v is None:
        return ""
    return (
        f"{esc(v.metric)} {v.value:.2f} (source {v.reference_value:.2f}, drop {v.drop:.2f} points)."
    )


def _sensitivity(root: Candidate) -> str:
    measured_cost = any(cost.metric_cost is not None for cost in root.layer_costs)
    rows = "".join(
        f"<tr><td class=num>{i}</td><td>{esc(cost.module or cost.layer)}"
        + (f" <small>({esc(cost.layer)})</small>" if cost.module else "")
        + f"</td><td>{esc(cost.op_type)}</td><td class=num>{cost.error:.3f}</td><td "
        f"class=num>{cost.cosine:.4f}</td>" + f"<td class=num>{num(cost.metric_cost)}</td></tr>"
        for i, cost in enumerate(root.layer_costs[:12], start=1)
    )
    note = (
        ""
        if measured_cost
        else (" The metric cost of each layer alone was not measured by this search (“–”).")
    )
    return (
        "<h4>Per-layer sensitivity, worst first</h4>"
        "<table class='layers'><tr><th class=num>rank</th><th>layer (PyTorch module where "
        "known)</th><th>op</th>"
        "<th class=num>error added</th><th class=num>cosine</th><th class=num>metric cost, "
        "points</th></tr>"
        f"{rows}</table><p class='note'>{HOW}{note}</p>"
    )


def _no_sensitivity(root: Candidate) -> str:
    if root.passed:
        return ""
    if any(step.name == "qat" for step in root.recipe.steps):
        return (
            "<p class='note'>Quantisation-aware training is the last resort after every "
            "post-training INT8 "
            "variant missed: it fine-tunes the whole network with INT8 rounding simulated, so "
            "there is no "
            "per-layer search of its own; the post-training families above show which layers are "
            "sensitive.</p>"
        )
    return (
        "<p class='note'>No per-layer sensitivity was measured for this family: the search runs "
        "only for an "
        "INT8 candidate that was built, verified and missed the budget while no other INT8 "
        "variant on its "
        "backend passed, within --time-budget; the build notes below say which applied.</p>"
    )


def _attempts(
    root: Candidate,
    attempts: list[Candidate],
    names: dict[str, str],
    speedup: Callable[[Candidate], float | None],
) -> str:
    base = root.verification.value if root.verification else None
    rows = []
    for a in attempts:
        kept = _kept(a)
        value = a.verification.value if a.verification else None
        bought = f"{value - base:+.2f}" if value is not None and base is not None else DASH
        speed = speedup(a) if a.timing and a.timing.calls else None
        layers = ", ".join(esc(names.get(k, k)) for k in kept[:6]) + (
            f", … (+{len(kept) - 6})" if len(kept) > 6 else ""
        )
        rows.append(
            f"<tr><td>{esc(a.key)}</td><td class=num>{len(kept) if kept else DASH}</td>"
            f"<td>{layers or DASH}</td><td class=num>{num(value)}</td><td class=num>{bought}</td>"
            f"<td class=num>{ms(a.timing.p50_ms) if speed else DASH}</td>"
            f"<td class=num>{f'{speed:.2f}×' if speed else DASH}</td>"
            f"<td>{'✓ passes' if a.passed else '✗ fails'}</td></tr>"
        )
    return (
        "<h4>Attempts: layers kept in higher precision and what that bought</h4><table "
        "class='attempts'>"
        "<tr><th>attempt</th><th class=num>layers in FP32</th><th>which</th><th "
        "class=num>metric</th>"
        "<th class=num>bought, points</th><th class=num>p50 ms</th><th class=num>× "
        "baseline</th><th>verdict</th></tr>" + "".join(rows) + "</table>"
    )


def _kept(c: Candidate) -> list[str]:
    for step in reversed(c.recipe.steps):
        if "keep_fp32" in step.options:
            return list(step.options["keep_fp32"])
    return []
