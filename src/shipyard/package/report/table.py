"""The candidate table: the main columns fit 1280 px; recipe, reason, details fold below a row."""

from __future__ import annotations

from collections.abc import Callable

from shipyard.package.report.format import (
    DASH,
    duration,
    esc,
    measured,
    ms,
    num,
    rate,
    short_key,
    size,
)
from shipyard.records import Candidate, Recipe

HEAD = (
    "#",
    "candidate",
    "verdict",
    "metric",
    "drop",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "× baseline",
    "samples/s",
    "size",
    "load",
    "memory",
)
FEW_CALLS = 100


def ordered(
    chosen: Candidate | None, baseline: Candidate | None, candidates: list[Candidate]
) -> list[Candidate]:
    """The chosen candidate first, then every timed one by p50 latency, then those never timed."""
    rows = ([baseline] if baseline else []) + candidates
    timed = sorted(
        (c for c in rows if c is not chosen and c.timing and c.timing.calls),
        key=lambda c: c.timing.p50_ms,
    )
    untimed = [c for c in rows if c is not chosen and not (c.timing and c.timing.calls)]
    return ([chosen] if chosen else []) + timed + untimed


def candidate_table(
    rows: list[Candidate],
    chosen: Candidate | None,
    baseline: Candidate | None,
    speedup: Callable[[Candidate], float | None],
) -> str:
    head = "".join(
        f"<th scope='col'{' class=num' if i > 2 else ''}>{esc(h)}</th>" for i, h in enumerate(HEAD)
    )
    body = "".join(_row(n, c, chosen, baseline, speedup) for n, c in enumerate(rows, start=1))
    return (
        f"<table class='candidates'><thead><tr>{head}</tr></thead>{body}</table>"
        "<p class='note'>Rows: the chosen candidate first, then by p50 latency. “–”: not measured "
        "(a candidate that failed to build, or the PyTorch module already in memory: no file, "
        "load or memory "
        f"growth of its own). †: fewer than {FEW_CALLS} timed calls, so p99 is close to the "
        "slowest call. "
        "Open a row's details for its recipe, why it failed, its output errors and how it was "
        "timed.</p>"
    )


def _row(
    number: int,
    c: Candidate,
    chosen: Candidate | None,
    baseline: Candidate | None,
    speedup: Callable[[Candidate], float | None],
) -> str:
    v, t = c.verification, c.timing
    timed = t is not None and t.calls > 0
    kind = (
        "chosen" if c is chosen else "baseline" if c is baseline else "pass" if c.passed else "fail"
    )
    speed = speedup(c) if timed and c is not baseline else None
    p99 = (ms(t.p99_ms) + ("†" if t.calls < FEW_CALLS else "")) if timed else DASH
    cells = [
        str(number),
        _name(c),
        _verdict(kind),
        num(v.value) if v else DASH,
        num(v.drop) if v else DASH,
        ms(t.p50_ms) if timed else DASH,
        ms(t.p90_ms) if timed else DASH,
        p99,
        f"{speed:.2f}×" if speed else ("1.00×" if kind == "baseline" and timed else DASH),
        _throughput(t) if timed else DASH,
        size(t.size_mb) if t else DASH,
        duration(t.load_ms) if t else DASH,
        size(t.peak_rss_mb) if t else DASH,
    ]
    tds = "".join(f"<td{' class=num' if i > 2 else ''}>{cell}</td>" for i, cell in enumerate(cells))
    return (
        f"<tbody class='{kind}'><tr class='main'>{tds}</tr>"
        f"<tr class='more'><td></td><td colspan='{len(HEAD) - 1}'>{details(c)}</td></tr></tbody>"
    )


def _name(c: Candidate) -> str:
    head, _, rest = short_key(c.key).partition("+")
    if c.name.startswith("baseline"):
        head, rest = c.key, ""
    return f"<span class='key'>{esc(head)}</span>" + (
        f"<span class='variant'>+{esc(rest)}</span>" if rest else ""
    )


def _verdict(kind: str) -> str:
    return {
        "chosen": "<span class='badge chosen'>★ chosen</span>",
        "baseline": "<span class='badge base'>■ baseline</span>",
        "pass": "<span class='badge pass'>✓ passes</span>",
        "fail": "<span class='badge fail'>✗ fails</span>",
    }[kind]


def _throughput(t) -> str:
    if not t.throughput:
        return DASH
    batched = f"{rate(t.throughput)} <small>@{t.throughput_batch}</small>"
    if t.batches_apart is False:  # a server runs it request by request
        return f"{batched}<br><small>unbatched {rate(t.served_throughput)}</small>"
    return batched


def details(c: Candidate) -> str:
    """The folded part of a row: what its summary shows is readable without opening it."""
    reason = c.why_failed
    summary = esc(_clip(reason, 160)) if reason else "recipe, output errors, timing"
    parts = [
        f"<p><b>key</b> <code>{esc(c.key)}</code></p>",
        f"<p><b>recipe</b> {recipe_html(c.recipe)}</p>",
    ]
    if reason:
        parts.append(f"<p class='reason'><b>why it failed</b> {esc(reason)}</p>")
    if c.verification and c.verification.outputs:
        parts.append(output_errors([c]))
    parts.append(f"<p><b>timing</b> {_timing_line(c)}</p>")
    return (
        f"<details><summary>{'<b>why:</b> ' if reason else ''}{summary}</summary>"
        f"<div class='detail'>{''.join(parts)}</div></details>"
    )


def _timing_line(c: Candidate) -> str:
    t = c.timing
    if t is None or not t.calls:
        return "not timed" + (
            f"; build {duration(t.build_ms)}" if t and measured(t.build_ms) else ""
        )
    line = (
        f"{t.calls} timed calls at batch 1 in {t.blocks or DASH} blocks ({t.dropped_per_block} "
        "dropped per block, "
        f"{t.warmup_calls} warm-ups), {t.threads or DASH} thread(s); mean {ms(t.mean_ms)} ms"
    )
    if t.throughput_calls:
        line += f"; throughput from {t.throughput_calls} calls at batch {t.throughput_batch}"
    line += f"; build {duration(t.build_ms)}, load {duration(t.load_ms)}"
    if t.p50_ms > 0 and t.p90_ms > 3 * t.p50_ms:
        line += (
            f". <b>Unsteady:</b> p90 is {t.p90_ms / t.p50_ms:.0f}× p50 — something else was using "
            "the cores "
            "while it ran; compare medians, not tails"
        )
    return line


def output_errors(candidates: list[Candidate]) -> str:
    """Per output of each candidate: how far it is from the source model's output."""
    head = (
        "<tr><th>candidate</th><th>output</th><th class=num>cosine mean</th><th class=num>cosine "
        "min</th>"
        "<th class=num>max abs</th><th class=num>mean abs</th><th class=num>max rel</th><th "
        "class=num>top-1 agree %</th></tr>"
    )
    rows = []
    for c in candidates:
        for e in c.verification.outputs if c.verification else []:
            rows.append(
                f"<tr><td>{esc(c.key)}</td><td>{esc(e.name)}</td><td "
                f"class=num>{e.cosine_mean:.4f}</td>"
                f"<td class=num>{e.cosine_min:.4f}</td><td class=num>{e.max_abs:.3g}</td>"
                f"<td class=num>{e.mean_abs:.3g}</td><td class=num>{e.max_rel:.3g}</td>"
                f"<td class=num>{num(e.top1_agreement, 1)}</td></tr>"
            )
    return f"<table class='errors'>{head}{''.join(rows)}</table>" if rows else ""


def recipe_html(recipe: Recipe, names: dict[str, str] | None = None) -> str:
    """The recipe's steps, long layer lists summarised (they are listed in the INT8 section)."""
    steps = []
    for step in recipe.steps:
        options = []
        for key, value in step.options.items():
            if step.name == "qat" and key == "epochs":
                key = "max_epochs"  # early stopping may train fewer; the notes say how many
            if isinstance(value, (list, tuple)) and len(value) > 3:
                shown = ", ".join((names or {}).get(v, v) for v in value[:3])
                value = f"[{len(value)} layers: {shown}, …]"
            options.append(f"{key}={value}")
        steps.append(step.name + (f"({', '.join(options)})" if options else ""))
    return "<code>" + esc(" → ".join(steps) or "the source model as given") + "</code>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
