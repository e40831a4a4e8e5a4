"""Every CPU backend side by side, through `shipyard build` itself: torch eager (the baseline),
TorchScript, ONNX Runtime, OpenVINO, ncnn, MNN, TVM (untuned, and tuned by MetaSchedule for
--tune-seconds) and AOTInductor, on example:digits, a torchvision MobileNetV3-Large (random weights:
speed only) and example:minilm (where the runtime can run it: ncnn takes float tensors only, so it
sits
out the text model).

    python benchmarks/backends.py [--models digits,mobilenet,minilm] [--threads N] [--tune-seconds
    S]

Each model's candidates are verified against the source and timed in one run (alternating blocks,
batch 1, the same thread count for every backend); ratios are against torch eager. Results go to
the `backends` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, markdown_table, write_section  # noqa: E402

from shipyard.bench import BenchConfig  # noqa: E402
from shipyard.pipeline.build import BuildOptions, build  # noqa: E402
from shipyard.sources import InputHint  # noqa: E402

BACKENDS = ["torch", "torchscript", "onnxruntime", "openvino", "ncnn", "mnn", "tvm", "aoti"]
MODELS = {
    "digits": dict(model="example:digits"),
    "mobilenet": dict(
        model=f"{HERE / 'models.py'}:mobilenet_v3",
        input_hints=[InputHint("image", "float32", (3, 224, 224))],
        output_names=["logits"],
    ),
    "minilm": dict(model="example:minilm"),
}
HEADER = [
    "model",
    "candidate",
    "p50 ms",
    "p99 ms",
    "vs torch eager",
    "throughput /s",
    "fidelity",
    "make+load s",
]


def run(name: str, threads: int, tune_seconds: float) -> list[list[str]]:
    options = BuildOptions.create(
        **MODELS[name],
        threads=threads,
        backends=BACKENDS,
        tune_seconds=tune_seconds,
        precisions=["fp32"],
        time_budget=None,
        bench=BenchConfig(rounds=4, block_seconds=0.5),
        throughput_batch=8,
    )
    start = time.perf_counter()
    result = build(options)
    print(f"{name}: built and timed in {time.perf_counter() - start:.0f} s")
    rows = []
    for candidate in [result.baseline, *result.candidates]:
        timing, check = candidate.timing, candidate.verification
        if not (timing and timing.calls and check and check.passed):
            why = " ".join((candidate.why_failed or "not timed").split())
            rows.append([name, candidate.key, "–", "–", "–", "–", why[:160].replace("|", "/"), "–"])
            print(f"{name:9s} {candidate.key:30s} failed: {why[:120]}")
            continue
        cosine = min((o.cosine_min for o in check.outputs), default=1.0)
        rows.append(
            [
                name,
                candidate.key,
                f"{timing.p50_ms:.3f}",
                f"{timing.p99_ms:.3f}",
                f"{result.speedup(candidate):.2f}×",
                f"{timing.throughput:.0f} @{timing.throughput_batch}",
                f"{check.metric} {check.value:.2f}, min cosine {cosine:.6f}",
                f"{timing.load_ms / 1000:.1f}",
            ]
        )
        print(
            f"{name:9s} {candidate.key:30s} p50 {timing.p50_ms:9.3f} ms  "
            f"{result.speedup(candidate):5.2f}×"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--tune-seconds", type=float, default=120, help="TVM tuning budget per model (default 120)"
    )
    args = parser.parse_args()
    rows = [
        row for name in args.models.split(",") for row in run(name, args.threads, args.tune_seconds)
    ]
    load = os.getloadavg()[1]
    write_section(
        "backends",
        "\n\n".join(
            [
                "## Every CPU backend, FP32 (`benchmarks/backends.py`)",
                machine_line(args.threads),
                "Batch-1 latency of each backend's artifact, verified against the source model "
                "first; MobileNetV3 has "
                'random weights (speed only). "make+load s" is the time to make the artifact '
                "(conversion, "
                "compilation; a step shared with an earlier candidate, such as the ONNX export, "
                "counts only there) and "
                "load it. tvm/fp32 runs TVM's default Relax schedules; "
                f"tvm/fp32+tuned-{args.tune_seconds:g}s was tuned by MetaSchedule for at most "
                f"{args.tune_seconds:g} s "
                "(`--tune-seconds`; its make+load time includes that) and is compiled for batch 1, "
                "so its batch-8 "
                "throughput runs sample by sample. AOTInductor and TVM are compiled for this CPU. "
                "ncnn takes float "
                "tensors only, so it does not run MiniLM. The machine's cores "
                f"were shared with other jobs (5-minute load average {load:.1f} at the end of the "
                "run): single numbers "
                "are noisy; compare ratios within a model, not across runs.",
                markdown_table(HEADER, rows),
            ]
        ),
    )


if __name__ == "__main__":
    main()
