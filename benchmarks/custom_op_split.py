"""A model with a custom op no ONNX exporter knows, built by `shipyard build` into a split package
(ONNX Runtime for the convolutions, PyTorch for the op), against torch eager at batch 1.

    python benchmarks/custom_op_split.py [--threads N] [--size 32]

The model is ``custom_op_model:make_model`` (12 conv-BN-ReLU blocks around the custom op
``shipyard_demo::channel_gate``). The build is restricted to the split backend so the package is
the split one; the package (loaded with ``shipyard.load``) and the original module are then timed
side by side in alternating blocks, and compared on 64 random inputs. Results go to the
`custom-op-split` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _report import machine_line, markdown_table, write_section  # noqa: E402
from custom_op_model import make_model  # noqa: E402

import shipyard  # noqa: E402
from shipyard.backends import get_backend  # noqa: E402
from shipyard.bench import BenchConfig, time_blocks  # noqa: E402
from shipyard.pipeline.build import BuildOptions, build  # noqa: E402
from shipyard.sources import InputHint  # noqa: E402

DEMO = HERE.parent / "tests" / "custom_op_model.py"


def op_share(module, x, runs: int = 50) -> float:
    """Share of eager time spent inside the custom op (timed alone on its real input)."""
    import torch

    with torch.inference_mode():
        features = module.stem(x)
        gate = torch.ops.shipyard_demo.channel_gate
        calls = {"op": lambda: gate(features, 1.5), "model": lambda: module(x)}
        stats = time_blocks(calls, BenchConfig(rounds=3, block_seconds=0.3))
    return stats["op"].p50_ms / stats["model"].p50_ms


def run(threads: int, size: int) -> tuple[list[str], list[str]]:
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "package"
        options = BuildOptions.create(
            f"{DEMO}:make_model",
            input_hints=[InputHint("image", "float32", (3, size, size))],
            backends=["split"],
            threads=threads,
            out=out,
            bench=BenchConfig(rounds=2, block_seconds=0.3),
        )
        start = time.perf_counter()
        result = build(options)
        build_s = time.perf_counter() - start
        if result.package is None:
            raise SystemExit(f"no package: {[c.why_failed for c in result.candidates]}")
        split_notes = [n for n in result.notes if n.startswith(("unknown op", "split into"))]
        predictor = shipyard.load(out, threads=threads)
        module = (
            make_model()
        )  # the original (the build's source is the BN-folded one); seeded, same weights
        eager = get_backend("torch").session_for_module(module, result.source.signature, threads)
        rng = np.random.default_rng(1)
        check = rng.standard_normal((64, 3, size, size)).astype(np.float32)
        error = float(
            np.abs(
                predictor.run({"image": check})["output"] - eager.run({"image": check})["output"]
            ).max()
        )
        one = {"image": check[:1]}
        stats = time_blocks(
            {"torch eager": lambda: eager.run(one), "split package": lambda: predictor.run(one)},
            BenchConfig(rounds=6, block_seconds=1.0),
        )
        share = op_share(module, torch.from_numpy(check[:1]))
        manifest = json.loads((out / "manifest.json").read_text())
    eager_ms, split_ms = stats["torch eager"].p50_ms, stats["split package"].p50_ms
    row = [
        f"{size}×{size}",
        str(threads),
        f"{eager_ms:.3f}",
        f"{split_ms:.3f}",
        f"{eager_ms / split_ms:.2f}×",
        f"{error:.1e}",
        f"{100 * share:.1f}%",
        manifest["backend"],
        f"{build_s:.0f} s",
    ]
    print(" | ".join(row))
    for note in split_notes:
        print("  " + note)
    return row, split_notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1],
        help="thread counts to run (default 1: on a loaded 2-core machine OpenMP at 2 threads "
        "measures the load)",
    )
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    rows, notes = [], []
    for threads in args.threads:
        row, notes = run(threads, args.size)
        rows.append(row)
    table = markdown_table(
        [
            "input",
            "threads",
            "torch eager p50 ms",
            "split package p50 ms",
            "speed-up",
            "max abs difference (64 inputs)",
            "custom op share of eager",
            "package backend",
            "build",
        ],
        rows,
    )
    write_section(
        "custom-op-split",
        "## Custom op: split deployment (`benchmarks/custom_op_split.py`)\n\n"
        + machine_line(args.threads[-1])
        + "\n\n"
        + table
        + "\n\nThe build reported:\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n",
    )


if __name__ == "__main__":
    main()
