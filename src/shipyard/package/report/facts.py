"""What the header says: the facts a reader needs before trusting a number, in plain sentences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.package.report.format import DASH, esc, ms, num, points
from shipyard.records import Candidate

if TYPE_CHECKING:
    from shipyard.pipeline.build import BuildResult

METRIC_WORDS = {
    "accuracy": "accuracy — the % of evaluation samples whose top-1 class equals its label",
    "agreement": "top-1 agreement — the % of evaluation samples on which the candidate's top-1 "
    "class "
    "equals the source model's",
    "cosine": "mean cosine similarity between the candidate's output and the source model's, × 100",
}
FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_tile": "AMX",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
}


@dataclass
class Facts:
    """The header's rows, each ``(label, HTML)``, and the threshold a candidate must reach."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    threshold: float | None = None
    reference: float | None = None
    max_drop: float | None = None


def gather(result: BuildResult, manifest: dict[str, Any] | None) -> Facts:
    machine = (manifest or {}).get("machine") or _machine()
    versions = (manifest or {}).get("versions") or _versions(result)
    facts = Facts(max_drop=result.options.search.max_drop)
    facts.reference = _reference_value(result)
    if facts.reference is not None and facts.max_drop is not None:
        facts.threshold = facts.reference - facts.max_drop
    facts.rows = [
        ("Machine", _machine_text(machine, result.threads)),
        ("Versions", ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items())),
        ("Data", _data_text(result)),
        ("Metric", esc(METRIC_WORDS.get(result.metric, result.metric)) + _per_sample(result)),
        ("Budget", _budget_text(result, facts)),
        ("Selection rule", _rule_text(result)),
        ("Baseline", _baseline_text(result)),
        ("Timing", timing_text(result)),
    ]
    return facts


def _machine() -> dict[str, Any]:
    from shipyard import machine

    return machine.describe()


def _versions(result: BuildResult) -> dict[str, str]:
    from shipyard.doctor import runtime_versions

    return runtime_versions(sorted({c.backend for c in result.candidates}))


def _machine_text(machine: dict[str, Any], threads: int) -> str:
    features = machine.get("cpu_features")
    if features is None:  # a manifest written before features were recorded by label
        features = [FEATURES[f] for f in FEATURES if f in machine.get("cpu_flags", [])]
    missing = [label for label in ("AVX-512", "AVX-512 VNNI", "AMX") if label not in features]
    return (
        f"{esc(machine.get('cpu', 'unknown CPU'))}, {esc(machine.get('cores', DASH))} cores, "
        f"{threads} thread(s) used; features: "
        f"<b>{esc(', '.join(features) or 'none of AVX2/AVX-512/AMX')}</b>"
        + (f" (no {esc(', '.join(missing))})" if missing else "")
        + (f"; {esc(machine['platform'])}" if machine.get("platform") else "")
    )


def _data_text(result: BuildResult) -> str:
    kind = (
        "<b>synthetic</b> inputs (no --data): the numbers measure speed and fidelity to the "
        "source, "
        "not task accuracy"
        if result.synthetic_data
        else "real data"
    )
    used = result.calibration_used
    calibration = f"{result.calibration_size} calibration samples"
    if used is not None and used != result.calibration_size:
        calibration += f" ({used} of them used to calibrate INT8)"
    return (
        f"{esc(result.data_description)} — {kind}; split with a seeded shuffle into {calibration} "
        "and "
        f"<b>{result.evaluation_size} evaluation samples</b>, on which every number below is "
        "measured "
        "(calibration and training never see them)"
    )


def _per_sample(result: BuildResult) -> str:
    if result.metric == "cosine" or not result.evaluation_size:
        return (
            f"; judged against the source model's own outputs on the {result.evaluation_size} "
            "evaluation samples"
        )
    return (
        f"; one sample is {100 / result.evaluation_size:.2g} points, so differences smaller than "
        "that are "
        "noise of a single sample"
    )


def _reference_value(result: BuildResult) -> float | None:
    baseline = result.baseline
    if baseline and baseline.verification:
        return baseline.verification.reference_value
    verified = [c for c in result.candidates if c.verification]
    return verified[0].verification.reference_value if verified else None


def _budget_text(result: BuildResult, facts: Facts) -> str:
    if facts.max_drop is None or facts.reference is None:
        return DASH
    return (
        f"at most <b>{points(facts.max_drop)}</b> below the source: a candidate passes when its "
        f"{esc(result.metric)} ≥ {facts.reference:.2f} − {facts.max_drop:g} = "
        f"<b>{facts.threshold:.2f}</b> "
        "and its outputs are finite"
    )


def _rule_text(result: BuildResult) -> str:
    if result.options.search.optimize_for == "throughput":
        batch = next((c.timing.throughput_batch for c in _timed(result)), 0)
        return (
            f"the passing candidate with the <b>highest throughput at batch {batch}</b> "
            "(--optimize-for throughput)"
        )
    return (
        "the passing candidate with the <b>lowest batch-1 p50 latency</b> (--optimize-for "
        "latency, the default; "
        "throughput does not count — --optimize-for throughput ranks by it)"
    )


def _baseline_text(result: BuildResult) -> str:
    baseline = result.baseline
    if baseline is None:
        return DASH
    how = baseline.name.split(": ", 1)[-1]  # torch eager, source on onnxruntime, source in Paddle…
    what = f"the source model as given ({how})"
    value = baseline.verification.value if baseline.verification else None
    p50 = baseline.timing.p50_ms if baseline.timing and baseline.timing.calls else None
    return (
        f"{esc(baseline.key)} — {what}; {esc(result.metric)} {num(value)}, p50 {ms(p50)} ms. "
        "Every candidate is compared with the source model's outputs, never with another "
        "candidate's"
    )


def _timed(result: BuildResult) -> list[Candidate]:
    rows = ([result.baseline] if result.baseline else []) + result.candidates
    return [c for c in rows if c.timing and c.timing.calls]


def timing_text(result: BuildResult) -> str:
    timed = _timed(result)
    if not timed:
        return "nothing was timed"
    t = timed[0].timing
    calls = sorted(c.timing.calls for c in timed)
    batch_calls = sorted(c.timing.throughput_calls for c in timed if c.timing.throughput_calls)
    blocks = f"{t.blocks} blocks" if t.blocks else "blocks"
    text = (
        f"batch 1 on one evaluation sample: every candidate timed in {blocks} of calls, the "
        "candidates "
        f"alternating block by block; {t.dropped_per_block} call(s) dropped at the start of each "
        "block, "
        f"{t.warmup_calls} warm-up calls before, after the full verification run; "
        f"<b>{_span(calls)} timed calls</b> per candidate (see each row); {result.threads} "
        "thread(s) "
        "for every backend. p50/p90/p99 are percentiles of those calls; a p99 from fewer than 100 "
        "calls "
        "is close to the slowest call and marked †."
    )
    if batch_calls:
        text += (
            f" Throughput: samples per second at batch {t.throughput_batch}, from the median of "
            f"{_span(batch_calls)} timed calls."
        )
    return (
        text
        + " Load: loading the artifact into its runtime; build: making it (export, conversion, "
        "quantisation)."
    )


def _unsteady(c: Candidate) -> str:
    t = c.timing
    if not (t and t.calls and t.p50_ms > 0 and t.p90_ms > 3 * t.p50_ms):
        return ""
    return (
        f" (<b>unsteady</b>: p90 {ms(t.p90_ms)} ms is {t.p90_ms / t.p50_ms:.0f}× p50 — the cores "
        "were busy "
        "with something else, so speed-ups against it are uncertain)"
    )


def _span(values: list[int]) -> str:
    return str(values[0]) if values[0] == values[-1] else f"{values[0]}–{values[-1]}"
