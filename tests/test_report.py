"""report.html of a real build: the facts in its header, plot, table and INT8 section, its layout
in a real browser (headless Chromium at 1280 px; skipped with the reason where Chromium is missing).

The build is the small CNN with weights made hostile to INT8 (one channel 1000× the others), so the
page has a failing INT8 family, a mixed-precision rescue and per-layer costs to show.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shipyard.package.report.axes import log_ticks, nice_ticks, spread_labels
from shipyard.package.report.format import DASH, ms, short_key, size

pytestmark = pytest.mark.backend("onnxruntime")
CHROMIUM = ("chromium-headless-shell", "chromium", "chromium-browser")
LAYOUT_JS = Path(__file__).with_name("report_layout.js")


@pytest.fixture(scope="module")
def built(small_cnn, hostile_weights, tmp_path_factory):
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build

    out = tmp_path_factory.mktemp("report") / "pkg"
    options = BuildOptions.create(
        f"{small_cnn['model']}:make",
        weights=hostile_weights,
        data=small_cnn["data"],
        backends=["torch", "onnxruntime"],
        precisions=["fp32", "int8"],
        max_drop=1.0,
        out=out,
        bench=BenchConfig(rounds=2, block_seconds=0.05),
    )
    result = build(options)
    return result, out, (out / "report.html").read_text()


def _rows(page: str) -> list[list[str]]:
    """The candidate table's main rows, as cell texts."""
    table = page[page.index("<table class='candidates'>") :]
    table = table[
        : table.index("<p class='note'>Rows:")
    ]  # the details rows hold tables of their own
    rows = re.findall(r"<tr class='main'>(.*?)</tr>", table)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)
        ]
        for row in rows
    ]


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_header_answers_can_i_trust_this(built):
    result, _, page = built
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    manifest = json.loads((built[1] / "manifest.json").read_text())
    assert manifest["machine"]["cpu"] in text and f"{manifest['machine']['cores']} cores" in text
    flags = _cpu_flags()
    features = text.split("features:")[1].split(";")[0].split("(no ")[0]  # has, not lacks
    assert ("AVX2" in features) == ("avx2" in flags)
    assert ("AVX-512 VNNI" in features) == ("avx512_vnni" in flags)
    import onnxruntime
    import torch

    assert (
        f"onnxruntime {onnxruntime.__version__}" in text
        and f"torch {torch.__version__.split('+')[0]}" in text
    )
    assert (
        f"{result.calibration_size} calibration samples" in text
        and f"{result.evaluation_size} evaluation samples" in text
    )
    assert (
        "real data" in text and "% of evaluation samples whose top-1 class equals its label" in text
    )
    threshold = result.baseline.verification.reference_value - 1.0
    assert f"≥ {result.baseline.verification.reference_value:.2f} − 1 = {threshold:.2f}" in text
    assert "lowest batch-1 p50 latency" in text
    calls = sorted(
        c.timing.calls for c in [result.baseline, *result.candidates] if c.timing and c.timing.calls
    )
    span = str(calls[0]) if calls[0] == calls[-1] else f"{calls[0]}–{calls[-1]}"
    assert f"{span} timed calls" in text and f"{result.baseline.timing.blocks} blocks" in text


def test_plot_has_ticks_a_budget_line_shapes_and_the_chosen_point(built):
    result, _, page = built
    plot = page[page.index("<svg") : page.index("</svg>")]
    assert "class='budget'" in plot and "budget: ≥" in plot
    assert len(re.findall(r"text-anchor='middle'>[0-9.]+</text>", plot)) >= 2  # x ticks
    assert plot.count("class='point chosen'") == 1 and plot.count("class='point fail'") >= 1
    fail = plot[plot.index("class='point fail'") :]
    assert fail.index("<path") < fail.index("</g>")  # a failure is a cross, not only a red dot
    timed = [
        c
        for c in [result.baseline, *result.candidates]
        if c.timing and c.timing.calls and c.verification
    ]
    assert plot.count("class='label'") == len(timed) + 2  # and the source's and the budget's lines


def test_table_puts_the_chosen_first_then_sorts_by_speed_and_shows_dashes_for_unmeasured(built):
    result, _, page = built
    rows = _rows(page)
    assert "chosen" in rows[0][2] and rows[0][1].replace(" ", "").startswith(
        short_key(result.chosen.key).split("+")[0]
    )
    latencies = [float(r[5].replace("\u2009", "")) for r in rows[1:] if r[5] != DASH]
    assert latencies == sorted(latencies)
    baseline = next(r for r in rows if "baseline" in r[2])
    assert baseline[10:] == [
        DASH,
        DASH,
        DASH,
    ]  # the module in memory: no file, load or memory growth of its own
    assert baseline[8] == "1.00×"
    onnx_row = next(r for r in rows if r[1] == "onnxruntime/fp32")
    assert onnx_row[10] != DASH and onnx_row[11] != DASH
    assert not any(cell in ("0", "0.00", "0 ms", "0.00 MB") for row in rows for cell in row[5:])


def test_int8_section_names_the_hostile_layer_by_module_path(built):
    result, _, page = built
    int8 = page[page.index("<h2 id='int8'>") :]
    failed = next(c for c in result.candidates if c.precision == "int8" and c.layer_costs)
    # layers are named by module path; features.1 (BN, channel 0 ×1000) is folded into the conv
    # features.0, whose output INT8 ruins, so it is among the costs the search measured
    layers = [cost for cost in failed.layer_costs if not cost.op_type.startswith("block")]
    assert layers and all(cost.module for cost in layers)  # features.3, head.2, …
    assert "features.0" in {cost.module for cost in layers}
    assert "features.0 <small>(" in int8 and "Per-layer sensitivity" in int8
    assert "cosine min" in int8 and f"{failed.verification.outputs[0].cosine_min:.4f}" in int8
    rescued = next(c for c in result.candidates if c.derived_from == failed.key and c.passed)
    assert html.escape(rescued.key) in int8 and "features." in int8.split("Attempts")[1]


def test_layers_kept_are_named_by_module_path_even_when_the_search_did_not_rank_them():
    from shipyard.package.report.int8 import int8_section
    from shipyard.records import Candidate, LayerCost, Recipe

    recipe = Recipe().then("export", format="onnx").then("quantize", method="nncf")
    root = Candidate("openvino", "int8", recipe)
    root.layer_costs = [LayerCost("/features/features.0/Conv", "Conv", 0.9, 0.5, "features.0")]
    root.layer_modules = {"/features/features.1/Relu": "features.1.relu"}  # a consumer, unranked
    kept = ["/features/features.0/Conv", "/features/features.1/Relu"]
    mixed = Recipe().then("export", format="onnx").then("quantize", method="nncf", keep_fp32=kept)
    attempt = Candidate("openvino", "mixed", mixed, derived_from=root.key)
    page = int8_section([root, attempt], lambda c: None)
    assert "<td>features.0, features.1.relu</td>" in page.split("Attempts")[1]


def test_shipped_section_and_one_offline_file(built):
    _, out, page = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"{out}/{manifest['model_file']}" in page and f"shipyard serve {out}" in page
    assert "shipyard.load(" in html.unescape(page)
    assert "<script" not in page and not re.search(r"(src|href)\s*=\s*['\"]?https?:", page)


def test_label_spreading_never_overlaps_and_ticks_are_round():
    placed = spread_labels([10, 10, 11, 12, 300, 300.5], 16, 0, 305)
    assert all(b - a >= 16 - 1e-9 for a, b in itertools.pairwise(placed)) and placed[-1] <= 305
    assert nice_ticks(21.5, 100.5) == [40, 60, 80, 100]
    assert log_ticks(2.2, 30.4) == [5, 10, 20] and log_ticks(0.025, 150) == [0.1, 1, 10, 100]
    assert ms(None) == DASH and ms(0) == DASH and size(None) == DASH and size(0.5) == "512 KiB"
    assert (
        short_key("ort/int8+quantize(method=static-qdq, calibration=minmax, per_channel=True)")
        == "ort/int8+static-qdq·minmax·per_channel"
    )


def _chromium() -> str:
    for name in CHROMIUM:
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip(
        "no headless Chromium on PATH: apt-get install chromium-headless-shell "
        "(scripts/test.sh does it where apt-get exists)"
    )


def _run_chromium(
    tmp_path: Path, page: Path, *args: str, width: int = 1280
) -> subprocess.CompletedProcess:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={width},1000",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def layout(report: str, tmp_path: Path, width: int = 1280) -> list[dict]:
    """The layout check's findings for ``report`` (closed, then with every details row open)."""
    page = tmp_path / "check.html"
    page.write_text(report.replace("</body>", f"<script>{LAYOUT_JS.read_text()}</script></body>"))
    dom = _run_chromium(tmp_path, page, "--dump-dom", width=width).stdout
    start = dom.rindex('<pre id="layout-check">') + len('<pre id="layout-check">')
    return json.loads(html.unescape(dom[start : dom.index("</pre>", start)]))


def test_report_fits_1280_px_in_headless_chromium(built, tmp_path):
    for state in layout(built[2], tmp_path):
        assert state["columns"][-1] == "memory" and len(state["columns"]) == 13
        assert state["scrollWidth"] <= state["viewport"], state["state"]
        assert state["tableRight"] <= state["viewport"]
        assert not (state["outside"] or state["cellOverflow"] or state["hiddenColumns"]), state
        assert not (state["svgOutside"] or state["labelOverlaps"]), state


def test_layout_check_catches_a_wide_table_and_overlapping_labels(built, tmp_path):
    broken = built[2].replace("</style>", "table.candidates{min-width:1500px}</style>")
    broken = re.sub(r"(<text class='label' x='[0-9.]+' y=')[0-9.]+'", r"\g<1>40'", broken)
    found = layout(broken, tmp_path)[0]
    assert found["scrollWidth"] > found["viewport"] and found["outside"] and found["labelOverlaps"]


def test_screenshot_and_print(built, tmp_path):
    report = tmp_path / "report.html"
    report.write_text(built[2])
    _run_chromium(tmp_path, report, f"--screenshot={tmp_path / 'shot.png'}", "--hide-scrollbars")
    _run_chromium(
        tmp_path, report, f"--print-to-pdf={tmp_path / 'report.pdf'}", "--no-pdf-header-footer"
    )
    from PIL import Image

    assert Image.open(tmp_path / "shot.png").size[0] == 1280
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF") and (
        tmp_path / "report.pdf"
    ).stat().st_size > 10_000
