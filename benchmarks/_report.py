"""Shared by the benchmark scripts: the machine line, the candidate table's rows and writing one
section of docs/benchmarks.md.

Each script owns one section, between ``<!-- begin:NAME -->`` and ``<!-- end:NAME -->``, so the
scripts can be rerun one at a time without touching each other's results.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Every number here was written by a script in `benchmarks/`; rerun it to refresh its section.\n"
)


def machine_line(threads: int) -> str:
    from shipyard.machine import describe as machine_description

    m = machine_description()
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, flags {', '.join(m['cpu_flags']) or 'none'}; "
        f"{threads} thread(s) for every backend; run "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )


def write_section(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace (or append) the section called ``name`` in ``doc`` (docs/benchmarks.md)."""
    text = doc.read_text() if doc.exists() else HEADER
    block = f"<!-- begin:{name} -->\n{markdown.strip()}\n<!-- end:{name} -->"
    pattern = re.compile(
        rf"<!-- begin:{re.escape(name)} -->.*?<!-- end:{re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


CANDIDATE_HEADER = [
    "model",
    "candidate",
    "precision",
    "metric",
    "drop",
    "p50 ms (batch 1)",
    "vs torch eager",
    "passed",
]
"""The columns of :func:`run_model`'s rows."""


def run_model(label: str, options: Any, rows: list[list[str]]) -> Any:
    """Run ``shipyard build`` with ``options`` (``BuildOptions``) and append one row per candidate,
    the baseline first, to ``rows``; returns the build's result."""
    from shipyard.pipeline.build import build

    start = time.perf_counter()
    result = build(options)
    seconds = time.perf_counter() - start
    for candidate in [result.baseline, *result.candidates]:
        v, t = candidate.verification, candidate.timing
        speed = result.speedup(candidate) if candidate is not result.baseline else 1.0
        mark = "★ " if candidate is result.chosen else ""
        rows.append(
            [
                label,
                mark + candidate.key,
                candidate.precision,
                f"{v.value:.2f}" if v else "–",
                f"{v.drop:+.2f}" if v else "–",
                f"{t.p50_ms:.3f}" if t and t.calls else "–",
                f"{speed:.2f}×" if speed else "–",
                "yes" if candidate.passed else ("no: " + candidate.why_failed[:60]),
            ]
        )
    print(
        f"{label}: built in {seconds:.0f} s, chosen {result.chosen.key if result.chosen else None}",
        flush=True,
    )
    return result
