"""FP32 on every CPU backend, through `shipyard build` itself: torch eager (the baseline),
TorchScript, ONNX Runtime (plain, onnxslim, ORT-optimised) and OpenVINO, on example:digits,
example:minilm, a small CNN none of the tools was written for, and a torchvision ResNet-50
(both with random weights: speed only).

    python benchmarks/fp32_backends.py [--models digits,minilm,resnet50] [--threads N]

Each model's candidates are timed side by side in one run (alternating blocks, batch 1); ratios
are against torch eager on the same threads. Results go to the `fp32-backends` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, markdown_table, write_section  # noqa: E402

from shipyard.bench import BenchConfig  # noqa: E402
from shipyard.machine import usable_cores as default_threads
from shipyard.pipeline.build import BuildOptions, build  # noqa: E402
from shipyard.sources import InputHint  # noqa: E402

MODELS = {
    "digits": dict(model="example:digits"),
    "minilm": dict(model="example:minilm"),
    "small_cnn": dict(
        model=f"{HERE / 'models.py'}:small_cnn",
        input_hints=[InputHint("image", "float32", (3, 32, 32))],
        output_names=["logits"],
    ),
    "resnet50": dict(
        model=f"{HERE / 'models.py'}:resnet50",
        input_hints=[InputHint("image", "float32", (3, 224, 224))],
        output_names=["logits"],
    ),
}


def run(name: str, threads: int) -> list[list[str]]:
    options = BuildOptions.create(
        **MODELS[name],
        threads=threads,
        backends=["torch", "torchscript", "onnxruntime", "openvino"],
        precisions=["fp32"],
        time_budget=None,
        bench=BenchConfig(rounds=4, block_seconds=1.0),
        throughput_batch=8,
    )
    result = build(options)
    rows = []
    for candidate in [result.baseline, *result.candidates]:
        timing, check = candidate.timing, candidate.verification
        if not (timing and timing.calls and check):
            rows.append([name, candidate.key, "–", "–", "–", "–", candidate.why_failed[:80]])
            continue
        rows.append(
            [
                name,
                candidate.key,
                f"{timing.p50_ms:.3f}",
                f"{timing.p99_ms:.3f}",
                f"{result.speedup(candidate):.2f}×",
                f"{timing.throughput:.1f} @{timing.throughput_batch}",
                f"{check.metric} {check.value:.2f}"
                + (" (synthetic)" if result.synthetic_data else ""),
            ]
        )
        print(
            f"{name:9s} {candidate.key:34s} p50 {timing.p50_ms:9.3f} ms  "
            f"{result.speedup(candidate):5.2f}×"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    rows = [row for name in args.models.split(",") for row in run(name, args.threads)]
    table = markdown_table(
        ["model", "variant", "p50 ms", "p99 ms", "vs torch eager", "throughput/s", "quality"], rows
    )
    write_section(
        "fp32-backends",
        "## FP32 across CPU backends (`benchmarks/fp32_backends.py`)\n\n"
        + machine_line(args.threads)
        + "\n\n"
        + table
        + "\n\nQuality is against the source model: "
        "digits accuracy on held-out digits; MiniLM mean cosine × 100 on the built-in sentences; "
        "the small CNN and ResNet-50 have random weights, so only top-1 agreement with the source "
        "on "
        "synthetic inputs.",
    )


if __name__ == "__main__":
    main()
