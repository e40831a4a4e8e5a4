"""Which candidates a build tries: every available backend × every precision asked for.

A plan is a ``Candidate`` with no results yet: backend, precision and the recipe that makes its
artifact. Each backend says which candidates it has for a precision (``Runtime.plans``).
"""

from __future__ import annotations

from shipyard.backends import CPU_BACKENDS, get_backend
from shipyard.errors import UsageError
from shipyard.records import Candidate, Recipe
from shipyard.sources.base import Source

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
"""Precisions a backend may plan; ``--precisions`` also takes ``auto`` (``CHOICES``), resolved per
CPU
by ``shipyard.quantize.auto`` before planning."""
CHOICES = ("auto", *PRECISIONS)


def parse_list(
    value: str | None, known: tuple[str, ...] | list[str], what: str
) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]``, each checked against ``known``; None stays None."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise UsageError(
            f"--{what} {value!r}: unknown {', '.join(unknown) or 'empty list'}; "
            f"expected a comma-separated list of {', '.join(known)}"
        )
    return items


def plan_candidates(
    source: Source, backends: list[str] | None, precisions: list[str] | None
) -> tuple[list[Candidate], list[Candidate]]:
    """(plans to try, candidates skipped because their backend is unavailable)."""
    plans: list[Candidate] = []
    skipped: list[Candidate] = []
    for precision in precisions or ["fp32"]:
        if precision not in PRECISIONS:
            raise UsageError(
                f"precision {precision!r} is not supported; expected one of {', '.join(PRECISIONS)}"
            )
        for name in backends or list(CPU_BACKENDS):
            backend = get_backend(name)
            ok, why = backend.available()
            for candidate in backend.plans(source, precision):
                candidate.recipe = Recipe(source.steps + candidate.recipe.steps)
                if not ok:
                    candidate.error = f"backend unavailable: {why}"
                    skipped.append(candidate)
                else:
                    plans.append(candidate)
    return plans, skipped


def with_tuned(plans: list[Candidate], tune_seconds: float, threads: int) -> list[Candidate]:
    """``plans`` with a tuned twin after each candidate whose backend tunes (``--tune-seconds``)."""
    planned = []
    for plan in plans:
        planned.append(plan)
        twin = get_backend(plan.backend).tuned(plan, tune_seconds, threads)
        if twin is not None:
            planned.append(twin)
    return planned
