"""The page: header facts, the choice, plots, the table, INT8 families, what shipped, the notes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.package.report import facts as header
from shipyard.package.report.format import esc, ms, num, size
from shipyard.package.report.int8 import int8_section
from shipyard.package.report.plot import points, quality_plot, throughput_plot
from shipyard.package.report.table import candidate_table, ordered

if TYPE_CHECKING:
    from shipyard.pipeline.build import BuildResult

STYLE = """
:root{color:#1a1a1a;background:#fff}
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1180px;padding:20px 24px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:18px 0 4px}h4{font-size:14px;margin:12px 0 4px}
dl.facts{display:grid;grid-template-columns:130px 1fr;gap:4px 14px;margin:8px 0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
.choice{background:#e6f4ea;border-left:5px solid #1b7a34;padding:8px 12px;margin:12px 0}
.nochoice{background:#fdecea;border-left:5px solid #b3261e;padding:8px 12px}
.warn{background:#fff4e0;border-left:5px solid #8a5300;padding:6px 12px}
.note{color:#444;font-size:13px}code{background:#f2f2f2;padding:1px 4px;overflow-wrap:anywhere}
pre{background:#f2f2f2;padding:8px 12px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
svg.plot{display:block;width:100%;height:auto;max-width:1100px}
table{border-collapse:collapse;width:100%;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0;border-bottom:2px solid #999;font-weight:600}
.num{text-align:right;white-space:nowrap}
table.candidates{font-size:13px}table.candidates tr.main td{border-top:1px solid #ccc}
table.candidates td:nth-child(2){overflow-wrap:anywhere;min-width:14em}
.key{font-weight:600}.variant{display:block;color:#444;font-size:12px}
tbody.chosen tr{background:#e6f4ea}tbody.fail tr.main{background:#fbf4f4}
tr.more td{padding-top:0;border:0;font-size:12px}
summary{cursor:pointer;color:#333;overflow-wrap:anywhere}.reason{color:#7a1c16}
.detail{padding:4px 0 8px}.detail p{margin:3px 0}
.badge{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;white-space:nowrap}
.badge.chosen{background:#1b7a34;color:#fff}.badge.pass{background:#e3ecf8;color:#153f75}
.badge.fail{background:#fdecea;color:#8c1d18}.badge.base{background:#eee;color:#222}
table.errors,table.layers,table.attempts{font-size:12px;width:auto;max-width:100%}
table.errors td,table.layers td,table.attempts td{border-bottom:1px solid #e0e0e0;
 overflow-wrap:anywhere}
section.family{border-left:3px solid #ccc;padding-left:12px;margin:12px 0}
@media print{
 @page{size:A4 landscape;margin:10mm}
 body{max-width:none;padding:0;font-size:11px}table.candidates{font-size:10.5px}
 h2,h3,h4{break-after:avoid}thead{display:table-header-group}tbody,tr,section.family,svg{break-inside:avoid}
 details::details-content{content-visibility:visible;display:block}summary{list-style:none}
 .choice,.nochoice,tbody.chosen tr,.badge{print-color-adjust:exact;-webkit-print-color-adjust:exact}
}
"""


def write_report(
    result: BuildResult,
    path: Path,
    manifest: dict[str, Any] | None = None,
    package_dir: Path | str | None = None,
) -> None:
    """Write ``report.html`` beside the package's files (their sizes are read from its folder)."""
    path.write_text(render_report(result, manifest, package_dir, path.parent), encoding="utf-8")


def render_report(
    result: BuildResult,
    manifest: dict[str, Any] | None = None,
    package_dir: Path | str | None = None,
    files_at: Path | None = None,
) -> str:
    """The whole page as one string: inline CSS and SVG, no scripts, nothing fetched."""
    facts = header.gather(result, manifest)
    rows = ordered(result.chosen, result.baseline, result.candidates)
    numbers = {id(c): n for n, c in enumerate(rows, start=1)}
    found = points(rows, numbers, result.chosen, result.baseline)
    title = f"Shipyard build: {esc(result.source.name)}"
    body = [
        f"<h1>{title}</h1>",
        _choice(result, facts.max_drop),
        _warnings(result),
        "<h2>Can I trust these numbers?</h2><dl class='facts'>"
        + "".join(f"<dt>{esc(label)}</dt><dd>{text}</dd>" for label, text in facts.rows)
        + "</dl>",
        "<h2>Latency against quality</h2>",
        quality_plot(found, result.metric, facts.threshold, facts.reference, facts.max_drop),
        (
            "<p class='note'>Each point is a candidate (#n as in the table), at its batch-1 p50 "
            "latency and its "
            f"{esc(result.metric)} on the evaluation set. Up and to the left is better.</p>"
        ),
    ]
    throughput = throughput_plot(found)
    if throughput:
        body += [
            "<h2>Throughput against batch size</h2>",
            throughput,
            (
                "<p class='note'>Batch 1: 1000 / p50 latency; the larger batch: its measured "
                "throughput. "
                "Passing candidates and the baseline only.</p>"
            ),
        ]
    body += [
        "<h2>Candidates</h2>",
        candidate_table(rows, result.chosen, result.baseline, result.speedup),
        int8_section(result.candidates, result.speedup),
        _shipped(result, manifest, package_dir, files_at),
        _notes(result.notes),
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


def _choice(result: BuildResult, max_drop: float | None) -> str:
    chosen = result.chosen
    if chosen is None or not (chosen.verification and chosen.timing):
        return (
            "<p class='nochoice'><b>No candidate stayed inside the accuracy budget</b>; "
            "nothing was packaged.</p>"
        )
    v, t = chosen.verification, chosen.timing
    speed = result.speedup(chosen)
    versus = f", <b>{speed:.2f}×</b> the speed of the baseline at batch 1" if speed else ""
    return (
        f"<p class='choice'>Chosen: <b>{esc(chosen.key)}</b> — {esc(result.metric)} {v.value:.2f} "
        f"(drop {v.drop:.2f} of the {num(max_drop, 2)} points allowed), p50 {ms(t.p50_ms)} "
        f"ms{versus}.</p>"
    )


def _warnings(result: BuildResult) -> str:
    if not result.synthetic_data:
        return ""
    return (
        "<p class='warn'>No data was given: quality is fidelity to the source model on synthetic "
        "inputs, "
        "not task accuracy.</p>"
    )


def _shipped(
    result: BuildResult,
    manifest: dict[str, Any] | None,
    package_dir: Path | str | None,
    files_at: Path | None,
) -> str:
    if result.chosen is None or manifest is None:
        return ""
    folder = str(package_dir or "PACKAGE")
    files = [f for f in manifest.get("files", []) if f != "report.html"]
    total = (
        sum((files_at / f).stat().st_size for f in files if files_at and (files_at / f).is_file())
        / 2**20
    )
    model = manifest.get("model_file", "")
    model_files = [files_at / f for f in files if f.startswith("model/")] if files_at else []
    model_size = (
        sum(f.stat().st_size for f in model_files if f.is_file()) / 2**20 if files_at else None
    )
    inputs = ", ".join(
        f"{i['name']} {i['datatype']} {i['shape']}" for i in manifest.get("inputs", [])
    )
    return (
        "<h2>What was shipped and how to use it</h2>"
        f"<p><code>{esc(folder)}/{esc(model)}</code> ({size(model_size)} with the files beside it "
        "in model/; the whole package, "
        f"{len(files)} files "
        f"with the manifest, {size(total if files_at else None)}) — "
        f"{esc(manifest.get('backend', ''))} "
        f"{esc(manifest.get('precision', ''))}. Inputs: {esc(inputs)} (-1: any size).</p>"
        f"<pre>{esc(_usage(folder, manifest.get('inputs', [])))}</pre>"
    )


def _usage(folder: str, inputs: list[dict[str, Any]]) -> str:
    feed = ", ".join(
        f"{i['name']!r}: "
        + (
            "np.array([b'some text'], dtype=object)"
            if i["datatype"] == "BYTES"
            else f"x_{i['name']}"
        )
        for i in inputs
    )
    shapes = "; ".join(
        f"x_{i['name']}: {i['datatype']} array {i['shape']}"
        for i in inputs
        if i["datatype"] != "BYTES"
    )
    return (
        f"import shipyard; outputs = shipyard.load({folder!r}).run({{{feed}}})"
        + (f"    # {shapes}" if shapes else "")
        + f"\nshipyard serve {folder}    # KServe v2 / Triton protocol: HTTP 127.0.0.1:8000, gRPC "
        ":8001"
    )


def _notes(notes: list[str]) -> str:
    unique = list(dict.fromkeys(notes))
    if not unique:
        return ""
    return (
        "<h2>Build notes</h2><ul class='note'>"
        + "".join(f"<li>{esc(n)}</li>" for n in unique)
        + "</ul>"
    )
