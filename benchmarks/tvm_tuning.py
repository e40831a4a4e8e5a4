"""What MetaSchedule tuning (`--tune-seconds`) gives TVM on this CPU: untuned TVM, TVM tuned with
each
budget, ONNX Runtime and torch eager, on the tests' small CNN and torchvision's MobileNetV3-Small
(random
weights: speed only).

    python benchmarks/tvm_tuning.py [--models small_cnn,mobilenet_v3_small] [--budgets 60,180]
    [--threads 1]

Every variant is made by the build's own recipes (BN folded first, as `shipyard build` does),
checked
against torch eager on 8 random inputs, then all of a model's variants are timed together in one run
(batch 1, alternating blocks, the same thread count). Results go to the `tvm-tuning` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, markdown_table, write_section  # noqa: E402

from shipyard.backends import get_backend  # noqa: E402
from shipyard.bench import BenchConfig, time_sessions  # noqa: E402
from shipyard.dataset import split, synthetic  # noqa: E402
from shipyard.optimize import apply_model_transforms  # noqa: E402
from shipyard.pipeline.build import BuildOptions, QuietReporter  # noqa: E402
from shipyard.records import Recipe  # noqa: E402
from shipyard.sources import InputHint, load_source  # noqa: E402
from shipyard.verify.metrics import row_cosine  # noqa: E402
from shipyard.workshop import Workshop  # noqa: E402

ONNX = Recipe().then("export", format="onnx")
HEADER = [
    "model",
    "variant",
    "p50 ms",
    "p99 ms",
    "vs torch eager",
    "vs untuned TVM",
    "tuned functions",
    "make s",
    "min cosine",
]


def small_cnn(folder: Path) -> dict:
    """The tests' small CNN (tests/conftest.py), trained the same way: a model the tool never
    saw."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import write_small_cnn

    files = write_small_cnn(folder)
    return dict(
        model=f"{files['model']}:make",
        weights=files["weights"],
        hints=[InputHint("image", "float32", (3, 16, 16))],
    )


def mobilenet_v3_small(folder: Path) -> dict:
    return dict(
        model=f"{HERE / 'models.py'}:mobilenet_v3_small",
        weights=None,
        hints=[InputHint("image", "float32", (3, 224, 224))],
    )


MODELS = {"small_cnn": small_cnn, "mobilenet_v3_small": mobilenet_v3_small}


def variants(budgets: list[float], threads: int) -> dict[str, tuple[str, Recipe]]:
    tvm = {"tvm/fp32": ("tvm", ONNX.then("convert", format="tvm"))}
    for seconds in budgets:
        tvm[f"tvm/fp32+tuned-{seconds:g}s"] = (
            "tvm",
            ONNX.then("convert", format="tvm", tune_seconds=seconds, threads=threads),
        )
    return {"onnxruntime/fp32": ("onnxruntime", ONNX), **tvm}


def run(name: str, budgets: list[float], threads: int, scratch: Path) -> list[list[str]]:
    spec = MODELS[name](scratch)
    original = load_source(spec["model"], spec["weights"], spec["hints"], None)
    data = synthetic(original.signature, samples=16, seed=0)
    source = apply_model_transforms(
        original, BuildOptions.create(spec["model"]).training, split(data), QuietReporter()
    )
    workshop = Workshop(source, scratch / f"{name}-work")
    torch_backend = get_backend("torch")
    sessions = {
        "torch eager": torch_backend.session_for_module(
            original.module, original.signature, threads
        )
    }
    made, tuning = {}, {}
    for key, (backend, recipe) in variants(budgets, threads).items():
        start = time.perf_counter()
        artifact = workshop.make(Recipe(source.steps + recipe.steps))
        sessions[key] = get_backend(backend).load(artifact, threads)
        made[key] = time.perf_counter() - start
        note = artifact.path.with_suffix(".json")
        tuning[key] = (
            json.loads(note.read_text())["tuning"] if backend == "tvm" and note.is_file() else None
        )
        print(f"{name}: made {key} in {made[key]:.0f} s", flush=True)
    check = {k: s.run({n: v[:8] for n, v in data.inputs.items()}) for k, s in sessions.items()}
    feed = {n: v[:1] for n, v in data.inputs.items()}
    stats = time_sessions(sessions, feed, BenchConfig(rounds=4, block_seconds=0.5))
    return [_row(name, key, stats, check, made.get(key), tuning.get(key)) for key in sessions]


def _row(
    name: str, key: str, stats: dict, check: dict, made: float | None, tuning: dict | None
) -> list[str]:
    (output,) = check["torch eager"]
    cosine = float(np.min(row_cosine(check["torch eager"][output], check[key][output])))
    p50 = stats[key].p50_ms
    untuned = stats["tvm/fp32"].p50_ms
    tuned = (
        f"{tuning['tuned']}/{tuning['functions']} ({tuning['records']} measured)" if tuning else "–"
    )
    print(
        f"{name:20s} {key:26s} p50 {p50:9.3f} ms  {stats['torch eager'].p50_ms / p50:5.2f}× eager  "
        f"{untuned / p50:5.2f}× untuned TVM  {tuned}",
        flush=True,
    )
    return [
        name,
        key,
        f"{p50:.3f}",
        f"{stats[key].p99_ms:.3f}",
        f"{stats['torch eager'].p50_ms / p50:.2f}×",
        f"{untuned / p50:.2f}×" if key.startswith("tvm") else "–",
        tuned,
        f"{made:.0f}" if made is not None else "–",
        f"{cosine:.6f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--budgets", default="60,180", help="tuning budgets in seconds, comma-separated"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-tvm-") as scratch:
        rows = [
            row
            for name in args.models.split(",")
            for row in run(name, budgets, args.threads, Path(scratch))
        ]
    load = os.getloadavg()[1]
    write_section(
        "tvm-tuning",
        "\n\n".join(
            [
                "## TVM with and without MetaSchedule tuning (`benchmarks/tvm_tuning.py`)",
                machine_line(args.threads),
                f"Tuning budgets: {', '.join(f'{b:g} s' for b in budgets)} (`--tune-seconds`), "
                f"with {args.threads} thread(s) "
                "for tuning measurements and for every runtime. Batch-1 latency; every variant was "
                "checked against torch "
                "eager on 8 random inputs (min cosine) and all of a model's variants were timed "
                "together in alternating "
                'blocks. A tuned library is compiled for batch 1; "tuned functions" counts the '
                "functions compiled with "
                "a tuned schedule (the rest keep TVM's default loops) and the schedules measured. "
                '"make s" includes '
                "the tuning and compiling (and, for the first variant, the ONNX export). "
                "MobileNetV3-Small has random "
                f"weights (speed only). 5-minute load average at the end of the run: {load:.1f}.",
                markdown_table(HEADER, rows),
            ]
        ),
    )


if __name__ == "__main__":
    main()
