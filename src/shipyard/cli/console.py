"""Terminal output: progress while a build works, the candidate table at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from shipyard.records import Candidate

if TYPE_CHECKING:
    from shipyard.pipeline.build import BuildResult

import sys

_WIDTH = None if sys.stdout.isatty() else 160
console = Console(stderr=True, highlight=False, width=_WIDTH)
out = Console(highlight=False, width=_WIDTH)


class ConsoleReporter:
    """Shows each stage of a build on stderr as it starts, with elapsed time, and for long stages
    how far they are and about how long they have left (from their pace so far)."""

    PROGRESS_EVERY = 10.0
    """Seconds between progress lines of one stage (the first step and the last always show)."""

    def __init__(self) -> None:
        import time

        self._clock = time.perf_counter
        self._start = self._clock()
        self._stages: dict[str, tuple[float, float]] = {}
        """Long stage → (when it started, when its progress was last shown)."""

    def progress(self, what: str, done: int, total: int) -> None:
        now = self._clock()
        if done == 0 or what not in self._stages:
            self._stages[what] = (now, now)
            return
        started, shown = self._stages[what]
        if done < total and now - shown < self.PROGRESS_EVERY:
            return
        self._stages[what] = (started, now)
        console.print(
            f"[dim]{now - self._start:6.1f}s[/dim] [cyan]{what}: "
            f"{_progress_text(now - started, done, total)}[/cyan]"
        )

    def stage(self, text: str) -> None:
        console.print(f"[dim]{self._clock() - self._start:6.1f}s[/dim] {text}")

    def candidate(self, candidate: Candidate) -> None:
        check = candidate.verification
        if candidate.passed and check:
            console.print(
                f"         [green]✓[/green] {check.metric} {check.value:.2f} (drop "
                f"{check.drop:+.2f})"
            )
        else:
            console.print(f"         [red]✗[/red] {_short(candidate.why_failed, 140)}")

    def note(self, text: str) -> None:
        console.print(f"[yellow]note:[/yellow] {text}")


def candidate_table(result: BuildResult) -> Table:
    table = Table(
        title=f"{result.source.name}: candidates ({result.metric}, batch-1 latency, "
        f"{result.threads} threads)",
        title_justify="left",
        caption=_honesty_caption(result),
        caption_justify="left",
    )
    for column in (
        "candidate",
        "passed",
        result.metric,
        "drop",
        *_HONESTY,
        "p50 ms",
        "p99 ms",
        "speed-up",
        "thru/s",
        "MB",
        "why not",
    ):
        table.add_column(
            column,
            justify="left" if column in ("candidate", "why not") else "right",
            overflow="fold",
        )
    if result.baseline:
        table.add_row(*_cells(result, result.baseline), style="italic")
    for candidate in result.candidates:
        table.add_row(*_cells(result, candidate), style=_style(result, candidate))
    return table


def _cells(result: BuildResult, c: Candidate) -> list[str]:
    v, t = c.verification, c.timing
    timed = t is not None and t.calls > 0
    speed = result.speedup(c) if timed else None
    mark = "★ " if c is result.chosen else ""
    return [
        mark + c.key,
        "yes" if c.passed else "no",
        f"{v.value:.2f}" if v else "–",
        f"{v.drop:+.2f}" if v else "–",
        *_honesty_cells(v),
        f"{t.p50_ms:.3f}" if timed else "–",
        f"{t.p99_ms:.3f}" if timed else "–",
        f"{speed:.2f}×" if speed else "–",
        _throughput(t) if timed else "–",
        f"{t.size_mb:.1f}" if t and t.size_mb else "–",
        _short(c.why_failed),
    ]


def _throughput(t) -> str:
    """Batched samples/s, and what a batching server gets where batches mix samples."""
    if t.batches_apart is False:
        return f"{t.throughput:.0f} (unbatched {t.served_throughput:.0f})"
    return f"{t.throughput:.0f}"


def _progress_text(elapsed: float, done: int, total: int) -> str:
    """``3/8 done in 42 s, about 70 s left`` (time left from the pace so far; unknown totals give
    none)."""
    if not total:
        return f"{done} done in {elapsed:.0f} s"
    if done >= total:
        return f"{total}/{total} done in {elapsed:.0f} s"
    bar = "█" * round(20 * done / total) + "░" * (20 - round(20 * done / total))
    left = elapsed / done * (total - done)
    return f"{bar} {done}/{total} in {elapsed:.0f} s, about {left:.0f} s left"


_HONESTY = ("top-5", "confident", "cosine")


def _honesty_cells(v) -> list[str]:
    """Top-5 agreement, agreement on confident samples and cosine (×100) beside the budget's
    metric."""
    values = (v.top5_agreement, v.confident_agreement, v.cosine) if v else (None, None, None)
    return [f"{x:.2f}" if x is not None else "–" for x in values]


def _honesty_caption(result: BuildResult) -> str | None:
    checked = next(
        (c.verification for c in [result.baseline, *result.candidates] if c and c.verification),
        None,
    )
    if checked is None or checked.top5_agreement is None and checked.confident_agreement is None:
        return None
    from shipyard.verify.agreement import CONFIDENT_MARGIN

    return (
        "top-5: % whose source top-1 is in the candidate's top 5; confident: top-1 agreement on "
        "the "
        f"{checked.confident_samples} of {checked.samples} samples where the source's top-1 "
        "probability beats its "
        f"top-2 by > {CONFIDENT_MARGIN:g}; cosine × 100. The budget counts {result.metric} only."
    )


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _style(result: BuildResult, c: Candidate) -> str:
    if c is result.chosen:
        return "bold green"
    return "" if c.passed else "dim"


def print_result(result: BuildResult) -> None:
    out.print(candidate_table(result))
    chosen = result.chosen
    if chosen is None:
        out.print(
            "[red]No candidate stayed inside the accuracy budget; nothing was packaged.[/red]"
        )
        return
    speed = result.speedup(chosen)
    baseline = (
        f" — {speed:.2f}× the speed of the {result.baseline.key}"
        if speed and result.baseline
        else ""
    )
    out.print(f"chosen: [bold]{chosen.key}[/bold] ({chosen.recipe}){baseline}")
    if result.package:
        out.print(f"package: {result.package}  (report: {result.package / 'report.html'})")
