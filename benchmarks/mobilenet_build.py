"""The real-model build as a user runs it: MobileNetV2 on labelled photo crops, default precisions.

One run, on whichever CPU this is:

1. writes ``--crops`` labelled crops (``example:mobilenet_v2``'s ``labelled_crops``, seed 0) to an
   ``.npz``;
2. runs ``shipyard build example:mobilenet_v2 --data crops.npz --metric accuracy --max-drop 1``
   through the CLI, with no ``--precisions`` (so ``auto``), and takes its wall time;
3. loads the package the way ``shipyard.load`` does and scores it against the source on a fresh
   labelled set (seed 7) that neither calibration nor selection saw;
4. times the package beside plain ONNX Runtime FP32 of the same model (its ONNX export, default
   session options) at batch 1, in alternating blocks in this one process;
5. reads the build's ``candidates.json`` for its best INT8 and NNCF's default INT8 on the same data.

With ``--unlabelled`` it also runs the example's own build (``shipyard build example:mobilenet_v2
--max-drop 1``: unlabelled crops, top-1 agreement) and reports its wall time and choice. Every
build gets a fresh ``SHIPYARD_CACHE``, so each is a first build.

    python benchmarks/mobilenet_build.py [--crops 600] [--threads 2] [--unlabelled] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _report import machine_line, markdown_table, write_section
from real_models import ort_runner

HELD_OUT_SEED = 7
NNCF_DEFAULT = "openvino/int8+quantize(method=nncf, transformer=False)"


@dataclass
class Outcome:
    build_seconds: float
    chosen: dict
    candidates: list[dict]
    source_accuracy: float
    package_accuracy: float
    package_ms: float
    ort_fp32_ms: float
    unlabelled: tuple[float, str] | None = None
    """The example's own (unlabelled) build: wall seconds and what it chose."""


def write_crops(path: Path, count: int) -> None:
    from shipyard.sources.examples.mobilenet_v2 import labelled_crops

    data = labelled_crops(count)
    np.savez(path, image=data.inputs["image"], labels=data.labels)


def run_build(out: Path, threads: int, *data_flags: str) -> float:
    """Wall seconds of one ``shipyard build`` with a cache of its own: a first build, cold."""
    command = [
        *(sys.executable, "-m", "shipyard", "build", "example:mobilenet_v2", *data_flags),
        *("--max-drop", "1", "--threads", str(threads), "--out", str(out)),
    ]
    environment = {**os.environ, "SHIPYARD_CACHE": str(out.parent / f"{out.name}-cache")}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=environment)
    return time.perf_counter() - start


def held_out_accuracy(package_dir: Path, count: int) -> tuple[float, float, object]:
    import torch

    import shipyard
    from shipyard.sources.examples.mobilenet_v2 import labelled_crops, make

    data = labelled_crops(count, seed=HELD_OUT_SEED)
    images, labels = data.inputs["image"], data.labels
    with torch.inference_mode():
        source = make()
        reference = np.concatenate([source(torch.from_numpy(x[None])).numpy() for x in images])
    package = shipyard.load(package_dir)
    output = np.concatenate([next(iter(package.run({"image": x[None]}).values())) for x in images])
    source_accuracy = float((reference.argmax(1) == labels).mean() * 100)
    package_accuracy = float((output.argmax(1) == labels).mean() * 100)
    return source_accuracy, package_accuracy, package


def side_by_side_ms(package, work: Path, threads: int) -> tuple[float, float]:
    from shipyard.backends.base import ONNX
    from shipyard.bench.timing import BenchConfig, time_blocks
    from shipyard.sources.examples import load_example
    from shipyard.workshop import Workshop

    onnx = Workshop(load_example("mobilenet_v2"), work / "plain").make(ONNX).path
    ort_fp32 = ort_runner(onnx, threads)
    feed = {"image": np.random.default_rng(0).standard_normal((1, 3, 224, 224), np.float32)}
    stats = time_blocks(
        {"package": lambda: package.run(feed), "ort-fp32": lambda: ort_fp32(feed)},
        BenchConfig(rounds=8, block_seconds=1.0),
    )
    return stats["package"].p50_ms, stats["ort-fp32"].p50_ms


def unlabelled_build(work: Path, threads: int) -> tuple[float, str]:
    out = work / "pkg-unlabelled"
    seconds = run_build(out, threads)
    manifest = json.loads((out / "manifest.json").read_text())
    candidates = json.loads((out / "candidates.json").read_text())
    return seconds, _name(next(c for c in candidates if _key(c) == _key(manifest)))


def measure(crops: int, threads: int, work: Path) -> Outcome:
    data, out = work / "crops.npz", work / "pkg"
    write_crops(data, crops)
    seconds = run_build(out, threads, "--data", str(data), "--metric", "accuracy")
    candidates = json.loads((out / "candidates.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    chosen = next(c for c in candidates if _key(c) == _key(manifest))
    source_accuracy, package_accuracy, package = held_out_accuracy(out, crops)
    package_ms, ort_ms = side_by_side_ms(package, work, threads)
    return Outcome(
        seconds, chosen, candidates, source_accuracy, package_accuracy, package_ms, ort_ms
    )


def _key(record: dict) -> tuple:
    """What names a candidate in both candidates.json and the manifest's top level."""
    return record["backend"], record["precision"], json.dumps(record["recipe"], sort_keys=True)


def _name(candidate: dict) -> str:
    last = candidate["recipe"][-1]
    step = ", ".join(f"{k}={v}" for k, v in last.items() if k != "step")
    suffix = f"+{last['step']}({step})" if last["step"] in ("quantize", "optimize") else ""
    return f"{candidate['backend']}/{candidate['precision']}{suffix}"


def int8_rows(outcome: Outcome) -> list[list[str]]:
    rows = []
    for c in outcome.candidates:
        if c["precision"] != "int8" or c.get("value") is None:
            continue
        rows.append(
            [
                _name(c),
                f"{c['value']:.2f}",
                f"{c['drop']:+.2f}",
                "yes" if c["passed"] else "no",
                f"{c['timing']['p50_ms']:.2f}" if c.get("timing") else "–",
            ]
        )
    return rows


def verdict(outcome: Outcome) -> list[str]:
    drop = outcome.source_accuracy - outcome.package_accuracy
    speed = outcome.ort_fp32_ms / outcome.package_ms
    reduced = outcome.chosen["precision"] != "fp32"
    int8 = [c for c in outcome.candidates if c["precision"] == "int8" and c.get("value")]
    best = max(int8, key=lambda c: c["value"], default=None)
    nncf = next((c for c in int8 if _name(c) == NNCF_DEFAULT), None)
    lines = [
        f"- Chosen: **{_name(outcome.chosen)}** ({outcome.chosen['precision']}; "
        f"reduced precision: {'yes' if reduced else 'no'}).",
        f"- Build wall time: **{outcome.build_seconds:.0f} s** (goal ≤ 300 s on 2 cores).",
        f"- Held-out accuracy (fresh seed-{HELD_OUT_SEED} crops): source "
        f"{outcome.source_accuracy:.2f} %, package {outcome.package_accuracy:.2f} % → drop "
        f"**{drop:+.2f}** points (goal ≤ 1).",
        f"- Batch 1, side by side: package {outcome.package_ms:.2f} ms, plain ONNX Runtime FP32 "
        f"{outcome.ort_fp32_ms:.2f} ms → **{speed:.2f}×** (goal ≥ 1.3×).",
    ]
    if outcome.unlabelled is not None:
        seconds, chosen = outcome.unlabelled
        lines.append(
            f"- The example's own build (unlabelled crops, agreement, `--max-drop 1`): "
            f"**{seconds:.0f} s**, chose {chosen}."
        )
    if best is not None and nncf is not None:
        lines.append(
            f"- Best INT8 on the build's evaluation split: {_name(best)} at {best['value']:.2f} "
            f"against NNCF's defaults at {nncf['value']:.2f} (goal: within 1 point or better)."
        )
    return lines


def report(outcome: Outcome, crops: int, threads: int, loads: tuple[float, float]) -> str:
    return "\n".join(
        [
            "## MobileNetV2 on labelled photos, default build (`benchmarks/mobilenet_build.py`)",
            "",
            machine_line(threads) + f" Load average before/after: {loads[0]:.1f} / {loads[1]:.1f}.",
            "",
            f"`shipyard build example:mobilenet_v2 --data crops.npz --metric accuracy --max-drop 1`"
            f" (no `--precisions`: `auto`) on {crops} labelled crops of the five sample "
            "photographs whose subject is an ImageNet class (tabby, espresso, tripod, missile, "
            "palace); the build splits them into calibration and evaluation halves.",
            "",
            *verdict(outcome),
            "",
            markdown_table(
                ["INT8 candidate", "accuracy", "drop", "passed", "p50 ms"], int8_rows(outcome)
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the data and package in this folder")
    parser.add_argument(
        "--unlabelled", action="store_true", help="also time the example's own unlabelled build"
    )
    args = parser.parse_args()
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="shipyard-mnv2-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        outcome = measure(args.crops, args.threads, work)
        if args.unlabelled:
            outcome.unlabelled = unlabelled_build(work, args.threads)
    text = report(outcome, args.crops, args.threads, (before, os.getloadavg()[0]))
    print(text)
    write_section("mobilenet-build", text)


if __name__ == "__main__":
    main()
