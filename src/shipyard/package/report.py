"""``report.html``: every candidate in a table, and latency against quality as a plot.

Self-contained (inline SVG, no scripts, no downloads) so it opens anywhere, offline.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.records import Candidate

if TYPE_CHECKING:
    from shipyard.pipeline.build import BuildResult

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;width:100%;margin:1em 0}th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child,td.recipe{text-align:left}tr.chosen{background:#e8f5e9;font-weight:600}
tr.failed{color:#999}.note{color:#555}.warn{color:#a60}code{background:#f4f4f4;padding:1px 4px}
"""


def write_report(result: BuildResult, path: Path) -> None:
    path.write_text(render_report(result), encoding="utf-8")


def render_report(result: BuildResult) -> str:
    chosen = result.chosen
    title = f"Shipyard build: {html.escape(result.source.name)}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{title}</h1>", _summary(result)]
    if result.synthetic_data:
        parts.append("<p class='warn'>No data was given: quality is fidelity to the source model on "
                     "synthetic inputs, not task accuracy.</p>")
    parts += [_plot(result), "<h2>Candidates</h2>", _table(result),
              "<h2>Notes</h2><ul>" + "".join(f"<li class='note'>{html.escape(n)}</li>" for n in result.notes) + "</ul>",
              "<p class='note'>Latency: batch 1, median (p50) and tail percentiles over alternating blocks "
              f"of calls, {result.threads} thread(s) for every backend. Throughput: samples/s at the batch shown. "
              "Memory: resident-set growth while loading and first running the candidate.</p>",
              "</body></html>"]
    if chosen is None:
        parts.insert(3, "<p class='warn'>No candidate stayed inside the accuracy budget.</p>")
    return "".join(parts)


def _summary(result: BuildResult) -> str:
    chosen = result.chosen
    lines = [f"<p>Data: {html.escape(result.data_description)} — {result.calibration_size} calibration / "
             f"{result.evaluation_size} evaluation samples. Metric: <b>{result.metric}</b>.</p>"]
    if chosen and chosen.verification and chosen.timing:
        speed = result.speedup(chosen)
        lines.append(f"<p>Chosen: <b>{html.escape(chosen.key)}</b> — {result.metric} "
                     f"{chosen.verification.value:.2f} (drop {chosen.verification.drop:.2f} points), "
                     f"p50 {chosen.timing.p50_ms:.3f} ms"
                     + (f", <b>{speed:.2f}×</b> the baseline ({html.escape(result.baseline.key)})" if speed else "")
                     + "</p>")
    return "".join(lines)


def _table(result: BuildResult) -> str:
    head = ("<tr><th>candidate</th><th>recipe</th><th>passed</th><th>metric</th><th>drop</th><th>p50 ms</th>"
            "<th>p90 ms</th><th>p99 ms</th><th>speed-up</th><th>throughput/s</th><th>size MB</th>"
            "<th>load ms</th><th>memory MB</th><th>why it failed</th></tr>")
    rows = ([result.baseline] if result.baseline else []) + result.candidates
    return "<table>" + head + "".join(_row(result, c) for c in rows) + "</table>"


def _row(result: BuildResult, candidate: Candidate) -> str:
    v, t = candidate.verification, candidate.timing
    timed = t is not None and t.calls > 0
    css = "chosen" if candidate is result.chosen else ("" if candidate.passed else "failed")
    speed = result.speedup(candidate) if timed else None
    cells = [candidate.key, str(candidate.recipe), "yes" if candidate.passed else "no",
             f"{v.value:.2f}" if v else "–", f"{v.drop:.2f}" if v else "–",
             *(f"{x:.3f}" if timed else "–" for x in ((t.p50_ms, t.p90_ms, t.p99_ms) if t else (0, 0, 0))),
             f"{speed:.2f}×" if speed else "–", f"{t.throughput:.0f} @{t.throughput_batch}" if timed else "–",
             f"{t.size_mb:.2f}" if t else "–", f"{t.load_ms:.0f}" if t else "–",
             f"{t.peak_rss_mb:.0f}" if t else "–", candidate.why_failed]
    tds = "".join(f"<td{' class=recipe' if i == 1 else ''}>{html.escape(c)}</td>" for i, c in enumerate(cells))
    return f"<tr class='{css}'>{tds}</tr>"


def _plot(result: BuildResult, width: int = 720, height: int = 360) -> str:
    rows = ([result.baseline] if result.baseline else []) + result.candidates
    points = [(c, c.timing.p50_ms, c.verification.value) for c in rows
              if c.timing and c.timing.calls and c.verification]
    if not points:
        return ""
    pad = 60
    xs = [math.log10(max(p[1], 1e-4)) for p in points]
    ys = [p[2] for p in points]
    x0, x1 = min(xs) - 0.1, max(xs) + 0.1
    y0, y1 = min(ys) - 0.5, max(ys) + 0.5
    sx = lambda x: pad + (x - x0) / (x1 - x0) * (width - 2 * pad)  # noqa: E731
    sy = lambda y: height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)  # noqa: E731
    marks = []
    for (candidate, _, value), x in zip(points, xs):
        colour = "#2e7d32" if candidate is result.chosen else ("#1565c0" if candidate.passed else "#c62828")
        marks.append(f"<circle cx='{sx(x):.1f}' cy='{sy(value):.1f}' r='6' fill='{colour}'>"
                     f"<title>{html.escape(candidate.key)}</title></circle>"
                     f"<text x='{sx(x) + 8:.1f}' y='{sy(value) - 8:.1f}' font-size='11'>{html.escape(candidate.key)}</text>")
    axes = (f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#333'/>"
            f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='#333'/>"
            f"<text x='{width / 2}' y='{height - 15}' text-anchor='middle'>p50 latency, batch 1 (ms, log scale)"
            f" — {10 ** x0:.3g} … {10 ** x1:.3g}</text>"
            f"<text x='15' y='{height / 2}' transform='rotate(-90 15 {height / 2})' text-anchor='middle'>"
            f"{html.escape(result.metric)} ({y0:.2f} … {y1:.2f})</text>")
    return (f"<h2>Latency against quality</h2><svg width='{width}' height='{height}' "
            f"xmlns='http://www.w3.org/2000/svg'>{axes}{''.join(marks)}</svg>"
            "<p class='note'>Green: chosen. Blue: inside the budget. Red: outside it.</p>")
