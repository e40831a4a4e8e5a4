"""Per-output errors and the task metric a build's ``--max-drop`` budget is counted in.

accuracy   % of samples whose top-1 class equals the label (needs labels)
agreement  % of samples whose top-1 class equals the source model's
cosine     mean cosine similarity with the source model's output × 100
"""

from __future__ import annotations

import numpy as np

from shipyard.errors import UsageError
from shipyard.records import OutputError, Verification

METRICS = ("accuracy", "agreement", "cosine")
Outputs = dict[str, np.ndarray]


def choose_metric(requested: str | None, task: str, has_labels: bool) -> str:
    """The metric to judge by: the user's pick, else accuracy with labels, else by task."""
    if requested:
        if requested not in METRICS:
            raise UsageError(f"unknown metric {requested!r}; expected one of {', '.join(METRICS)}")
        if requested == "accuracy" and not has_labels:
            raise UsageError("--metric accuracy needs labels: add a 'labels' array to the .npz")
        return requested
    if has_labels and task == "classification":
        return "accuracy"
    return "agreement" if task == "classification" else "cosine"


def verify_outputs(
    metric: str, reference: Outputs, candidate: Outputs, labels: np.ndarray | None, max_drop: float
) -> Verification:
    """Compare a candidate's outputs with the source's on the same samples."""
    names = list(reference)
    errors = [output_error(n, reference[n], candidate[n]) for n in names]
    first = names[0]
    reference_value = metric_value(metric, reference[first], reference[first], labels)
    value = metric_value(metric, reference[first], candidate[first], labels)
    drop = reference_value - value
    passed = bool(np.isfinite(value)) and drop <= max_drop + 1e-9
    reason = (
        ""
        if passed
        else (
            f"{metric} {value:.2f} is {drop:.2f} points below the source's "
            f"{reference_value:.2f}; budget {max_drop:g}"
        )
    )
    if not all(np.isfinite(candidate[n]).all() for n in names if candidate[n].dtype.kind == "f"):
        passed, reason = False, "outputs contain NaN or infinity"
    from shipyard.verify.agreement import agreement

    more = agreement(reference[first], candidate[first])
    return Verification(
        metric,
        value,
        reference_value,
        drop,
        passed,
        len(reference[first]),
        errors,
        reason,
        more.cosine,
        more.top5,
        more.confident,
        more.confident_samples,
    )


def metric_value(
    metric: str, reference: np.ndarray, output: np.ndarray, labels: np.ndarray | None
) -> float:
    if metric == "accuracy":
        return float((top1(output) == labels).mean() * 100)
    if metric == "agreement":
        return float((top1(output) == top1(reference)).mean() * 100)
    return float(row_cosine(reference, output).mean() * 100)


def top1(logits: np.ndarray) -> np.ndarray:
    return logits.reshape(len(logits), -1).argmax(axis=1)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity per sample, every axis but the first flattened."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    dot = (a * b).sum(axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (norms == 0) & (np.abs(a - b).max(axis=1) == 0)
    return np.where(both_zero, 1.0, dot / np.maximum(norms, 1e-30))


def output_error(name: str, reference: np.ndarray, output: np.ndarray) -> OutputError:
    if reference.shape != output.shape:
        return OutputError(name, float("inf"), float("inf"), float("inf"), 0.0, 0.0)
    ref = reference.astype(np.float64)
    diff = np.abs(output.astype(np.float64) - ref)
    rel = diff / np.maximum(np.abs(ref), 1e-6)
    cosine = row_cosine(ref, output)
    agreement = None
    if ref.ndim == 2 and ref.shape[1] > 1:
        agreement = float((top1(ref) == top1(output)).mean() * 100)
    return OutputError(
        name,
        float(diff.max(initial=0)),
        float(diff.mean()) if diff.size else 0.0,
        float(rel.max(initial=0)),
        float(cosine.mean()),
        float(cosine.min(initial=1.0)),
        agreement,
    )
