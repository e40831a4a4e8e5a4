"""The two plots, as inline SVG: latency against quality, and throughput against batch size.

Labels sit in a column right of the plot, joined to their points by leader lines and spread so
they never overlap; points far below the budget go into a strip under a broken axis so they do
not squash the points that matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shipyard.package.report.axes import (
    Scale,
    log_range,
    log_ticks,
    nice_ticks,
    spread_labels,
    tick_label,
)
from shipyard.package.report.format import esc, short_key
from shipyard.records import Candidate

WIDTH, LEFT, RIGHT, LABEL_X = 1100, 70, 690, 722
GAP = 16
PASS, FAIL, CHOSEN, BASE = "#1f5fa8", "#b3261e", "#1b7a34", "#333333"


@dataclass
class Point:
    number: int
    candidate: Candidate
    latency: float
    value: float
    kind: str
    """chosen, pass, fail or baseline."""


def points(
    rows: list[Candidate],
    numbers: dict[int, int],
    chosen: Candidate | None,
    baseline: Candidate | None,
) -> list[Point]:
    found = []
    for c in rows:
        if not (
            c.timing and c.timing.calls and c.verification and math.isfinite(c.verification.value)
        ):
            continue
        kind = (
            "chosen"
            if c is chosen
            else "baseline"
            if c is baseline
            else "pass"
            if c.passed
            else "fail"
        )
        found.append(Point(numbers[id(c)], c, c.timing.p50_ms, c.verification.value, kind))
    return found


def quality_plot(
    found: list[Point],
    metric: str,
    threshold: float | None,
    reference: float | None,
    max_drop: float | None,
) -> str:
    if not found:
        return "<p>No candidate was both verified and timed, so there is nothing to plot.</p>"
    lo, hi, outliers = _quality_window(found, threshold, reference, max_drop)
    main_height = max(300, GAP * (len(found) + 3))
    top, bottom = 34, 34 + main_height
    strip = (bottom + 26, bottom + 96) if outliers else None
    axis_y = strip[1] if strip else bottom
    height = axis_y + 52
    x = Scale(*log_range([p.latency for p in found]), LEFT, RIGHT, log=True)
    y = Scale(lo, hi, bottom, top)
    low = _strip_scale(outliers, lo, strip) if strip else None
    where = {id(p): (x(p.latency), low(p.value) if p.value < lo else y(p.value)) for p in found}
    parts = [
        _legend(),
        _x_axis(x, top, axis_y, "p50 latency at batch 1, ms (log scale)"),
        _y_axis(y, lo, hi, metric, top, bottom),
        _limits(y, threshold, reference, max_drop),
    ]
    if strip:
        parts.append(_break(strip, bottom, low))
    labels = _point_labels(found, where, lo) + _limit_labels(y, threshold, reference, max_drop)
    parts += [_labels(labels, top, axis_y), *(_marker(p, *where[id(p)]) for p in found)]
    return _svg(height, "".join(parts), f"p50 latency against {metric}")


def _quality_window(
    found: list[Point], threshold: float | None, reference: float | None, max_drop: float | None
) -> tuple[float, float, list[Point]]:
    values = [p.value for p in found]
    floor = min(values)
    if threshold is not None:
        floor = max(floor, threshold - max(3 * (max_drop or 0), 3.0))
    near = [v for v in values if v >= floor] + [v for v in (threshold, reference) if v is not None]
    lo, hi = min(near), max(near)
    span = max(hi - lo, 1.0)
    lo, hi = lo - 0.08 * span, hi + 0.08 * span
    return lo, hi, [p for p in found if p.value < lo]


def _svg(height: float, body: str, title: str) -> str:
    return (
        f"<svg class='plot' viewBox='0 0 {WIDTH} {height:.0f}' width='{WIDTH}' "
        f"height='{height:.0f}' "
        f"role='img' aria-label='{esc(title)}' xmlns='http://www.w3.org/2000/svg' font-size='12' "
        f"font-family='system-ui, sans-serif'>{body}</svg>"
    )


def _legend() -> str:
    items = [
        (_circle(0, 0, 5, PASS), "passes the budget"),
        (_cross(0, 0, FAIL), "fails it"),
        (_chosen_mark(0, 0), "chosen"),
        (_square(0, 0, BASE), "baseline"),
    ]
    out, cursor = [], LEFT
    for mark, text in items:
        out.append(
            f"<g transform='translate({cursor + 10},14)'>{mark}</g>"
            f"<text x='{cursor + 26}' y='18'>{esc(text)}</text>"
        )
        cursor += 40 + 7 * len(text)
    return "".join(out)


def _x_axis(x: Scale, top: float, axis_y: float, title: str) -> str:
    out = [f"<line x1='{LEFT}' y1='{axis_y}' x2='{RIGHT}' y2='{axis_y}' stroke='#333'/>"]
    for tick in log_ticks(x.lo, x.hi):
        px = x(tick)
        out.append(
            f"<line x1='{px:.1f}' y1='{top}' x2='{px:.1f}' y2='{axis_y}' stroke='#e3e3e3'/>"
            f"<line x1='{px:.1f}' y1='{axis_y}' x2='{px:.1f}' y2='{axis_y + 5}' stroke='#333'/>"
            f"<text x='{px:.1f}' y='{axis_y + 18}' text-anchor='middle'>{tick_label(tick)}</text>"
        )
    out.append(
        f"<text x='{(LEFT + RIGHT) / 2}' y='{axis_y + 40}' text-anchor='middle' font-weight='600'>"
        f"{esc(title)}</text>"
    )
    return "".join(out)


def _y_axis(y: Scale, lo: float, hi: float, metric: str, top: float, bottom: float) -> str:
    out = [f"<line x1='{LEFT}' y1='{top}' x2='{LEFT}' y2='{bottom}' stroke='#333'/>"]
    for tick in nice_ticks(lo, hi):
        py = y(tick)
        out.append(
            f"<line x1='{LEFT}' y1='{py:.1f}' x2='{RIGHT}' y2='{py:.1f}' stroke='#e3e3e3'/>"
            f"<line x1='{LEFT - 5}' y1='{py:.1f}' x2='{LEFT}' y2='{py:.1f}' stroke='#333'/>"
            f"<text x='{LEFT - 8}' y='{py + 4:.1f}' text-anchor='end'>{tick:g}</text>"
        )
    middle = (top + bottom) / 2
    out.append(
        f"<text x='16' y='{middle:.0f}' transform='rotate(-90 16 {middle:.0f})' "
        "text-anchor='middle' "
        f"font-weight='600'>{esc(metric)} (points)</text>"
    )
    return "".join(out)


def _limits(
    y: Scale, threshold: float | None, reference: float | None, max_drop: float | None
) -> str:
    out = []
    if reference is not None:
        out.append(
            f"<line x1='{LEFT}' y1='{y(reference):.1f}' x2='{RIGHT}' y2='{y(reference):.1f}' "
            "stroke='#555' "
            "stroke-dasharray='2 3'/>"
        )
    if threshold is not None:
        out.append(
            f"<line class='budget' x1='{LEFT}' y1='{y(threshold):.1f}' x2='{RIGHT}' "
            f"y2='{y(threshold):.1f}' "
            f"stroke='{FAIL}' stroke-width='1.5' stroke-dasharray='7 4'/>"
        )
    return "".join(out)


def _limit_labels(
    y: Scale, threshold: float | None, reference: float | None, max_drop: float | None
) -> list[Label]:
    labels = []
    if reference is not None:
        labels.append(Label(RIGHT, y(reference), f"┄ source {reference:.2f}", colour="#333"))
    if threshold is not None:
        labels.append(
            Label(
                RIGHT,
                y(threshold),
                f"╌ budget: ≥ {threshold:.2f} (source − {max_drop:g}); below fails",
                "600",
                FAIL,
            )
        )
    return labels


def _strip_scale(outliers: list[Point], lo: float, strip: tuple[float, float]) -> Scale:
    """The broken axis's lower part: its own compressed scale for points far below the budget."""
    bottom_value = min(p.value for p in outliers)
    span = max(lo - bottom_value, 1.0)
    return Scale(bottom_value - 0.08 * span, lo, strip[1] - 4, strip[0] + 8)


def _break(strip: tuple[float, float], bottom: float, low: Scale) -> str:
    gap_y = (bottom + strip[0]) / 2
    zigzag = "".join(
        f"<line x1='{LEFT - 7}' y1='{gap_y + d + 3}' x2='{LEFT + 7}' y2='{gap_y + d - 3}' "
        "stroke='#333'/>"
        for d in (-3, 3)
    )
    ticks = "".join(
        f"<line x1='{LEFT - 5}' y1='{low(t):.1f}' x2='{LEFT}' y2='{low(t):.1f}' stroke='#333'/>"
        f"<text x='{LEFT - 8}' y='{low(t) + 4:.1f}' text-anchor='end'>{t:g}</text>"
        for t in nice_ticks(low.lo, low.hi, 4)
    )
    return (
        f"<rect x='{LEFT}' y='{strip[0]}' width='{RIGHT - LEFT}' height='{strip[1] - strip[0]}' "
        "fill='#f4f4f4'/>"
        f"<line x1='{LEFT}' y1='{strip[0]}' x2='{LEFT}' y2='{strip[1]}' "
        f"stroke='#333'/>{zigzag}{ticks}"
    )


@dataclass
class Label:
    x: float
    y: float
    text: str
    weight: str = "400"
    colour: str = "#1a1a1a"


def _point_labels(
    found: list[Point], where: dict[int, tuple[float, float]], lo: float
) -> list[Label]:
    return [
        Label(*where[id(p)], _label_text(p, lo), "700" if p.kind == "chosen" else "400")
        for p in found
    ]


def _label_text(p: Point, lo: float) -> str:
    """``#n key`` plus the value of a point below the axis, within the label column's width."""
    number = f"#{p.number} "
    value = f" ({p.value:.1f})" if p.value < lo else ""
    room = LABEL_CHARS - len(number) - len(value)
    return number + _short(short_key(p.candidate.key), room) + value


def _labels(labels: list[Label], top: float, bottom: float) -> str:
    """Every label in the column right of the plot, joined to its anchor by a leader line."""
    ordered = sorted(labels, key=lambda label: label.y)
    placed = spread_labels([label.y for label in ordered], GAP, top + 4, bottom)
    out = []
    for label, label_y in zip(ordered, placed):
        out.append(
            f"<polyline class='leader' points='{label.x:.1f},{label.y:.1f} "
            f"{RIGHT + 8},{label_y:.1f} "
            f"{LABEL_X - 4},{label_y:.1f}' fill='none' stroke='#9a9a9a' stroke-width='0.8'/>"
            f"<text class='label' x='{LABEL_X}' y='{label_y + 4:.1f}' font-weight='{label.weight}' "
            f"fill='{label.colour}'>{esc(label.text)}</text>"
        )
    return "".join(out)


LABEL_CHARS = 54
"""Characters a label may take in the column right of the plot (its ``#n`` and value included)."""


def _short(key: str, limit: int = 50) -> str:
    return key if len(key) <= limit else key[: limit - 1] + "…"


def _marker(p: Point, px: float, py: float) -> str:
    mark = {
        "chosen": _chosen_mark,
        "baseline": lambda a, b: _square(a, b, BASE),
        "pass": lambda a, b: _circle(a, b, 5, PASS),
        "fail": lambda a, b: _cross(a, b, FAIL),
    }[p.kind](px, py)
    return f"<g class='point {p.kind}'><title>{esc(p.candidate.key)}</title>{mark}</g>"


def _circle(x: float, y: float, r: float, colour: str) -> str:
    return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{r}' fill='{colour}'/>"


def _cross(x: float, y: float, colour: str) -> str:
    return (
        "<path "
        f"d='M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},{y + 5:.1f}"
        f"M{x - 5:.1f},{y + 5:.1f}L{x + 5:.1f},{y - 5:.1f}' "
        f"stroke='{colour}' stroke-width='2.5'/>"
    )


def _square(x: float, y: float, colour: str) -> str:
    return f"<rect x='{x - 5:.1f}' y='{y - 5:.1f}' width='10' height='10' fill='{colour}'/>"


def _chosen_mark(x: float, y: float) -> str:
    return (
        f"<circle cx='{x:.1f}' cy='{y:.1f}' r='10' fill='none' stroke='{CHOSEN}' stroke-width='2'/>"
        + _circle(x, y, 5, CHOSEN)
    )


def throughput_plot(found: list[Point]) -> str:
    """Samples/s at batch 1 (1000 / p50) and at the throughput batch, for the passing candidates."""
    series = [p for p in found if p.kind != "fail" and p.candidate.timing.throughput > 0]
    batch = max((p.candidate.timing.throughput_batch for p in series), default=1)
    if not series or batch <= 1:
        return ""
    rates = [(1000 / p.latency, p.candidate.timing.throughput) for p in series]
    height = max(260, GAP * (len(series) + 2)) + 90
    top, bottom = 34, height - 56
    x = Scale(0.8, batch * 1.25, LEFT, RIGHT, log=True)
    y = Scale(*log_range([r for pair in rates for r in pair], 0.1), bottom, top, log=True)
    batches = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b <= batch] + (
        [batch] if batch & (batch - 1) else []
    )
    parts = [_batch_axis(x, batches, top, bottom), _rate_axis(y, top, bottom)]
    ends = {id(p): (x(batch), y(many)) for p, (_, many) in zip(series, rates)}
    for p, (one, many) in zip(series, rates):
        colour = {"chosen": CHOSEN, "baseline": BASE}.get(p.kind, PASS)
        parts.append(
            f"<polyline points='{x(1):.1f},{y(one):.1f} {x(batch):.1f},{y(many):.1f}' fill='none' "
            f"stroke='{colour}' stroke-width='{2.5 if p.kind == 'chosen' else 1.3}'/>"
            + _marker(p, x(1), y(one))
            + _marker(p, x(batch), y(many))
        )
    parts.append(_labels(_point_labels(series, ends, -math.inf), top, bottom))
    return _svg(height, "".join(parts), "throughput against batch size")


def _batch_axis(x: Scale, batches: list[int], top: float, bottom: float) -> str:
    out = [f"<line x1='{LEFT}' y1='{bottom}' x2='{RIGHT}' y2='{bottom}' stroke='#333'/>"]
    for b in batches:
        px = x(b)
        out.append(
            f"<line x1='{px:.1f}' y1='{bottom}' x2='{px:.1f}' y2='{bottom + 5}' stroke='#333'/>"
            f"<text x='{px:.1f}' y='{bottom + 18}' text-anchor='middle'>{b}</text>"
        )
    out.append(
        f"<text x='{(LEFT + RIGHT) / 2}' y='{bottom + 40}' text-anchor='middle' font-weight='600'>"
        "batch size (log scale; measured at the two batch sizes marked)</text>"
    )
    return "".join(out)


def _rate_axis(y: Scale, top: float, bottom: float) -> str:
    out = [f"<line x1='{LEFT}' y1='{top}' x2='{LEFT}' y2='{bottom}' stroke='#333'/>"]
    for tick in log_ticks(y.lo, y.hi):
        py = y(tick)
        out.append(
            f"<line x1='{LEFT}' y1='{py:.1f}' x2='{RIGHT}' y2='{py:.1f}' stroke='#e3e3e3'/>"
            f"<text x='{LEFT - 8}' y='{py + 4:.1f}' text-anchor='end'>{tick_label(tick)}</text>"
        )
    middle = (top + bottom) / 2
    out.append(
        f"<text x='16' y='{middle:.0f}' transform='rotate(-90 16 {middle:.0f})' "
        "text-anchor='middle' "
        "font-weight='600'>samples / s (log scale)</text>"
    )
    return "".join(out)
