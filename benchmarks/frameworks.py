"""Models from other frameworks through `shipyard build`: each framework's own runtime (the baseline
and reference) against the converted candidates, on MobileNetV2 built in Paddle and in Keras with
random weights (no download: speed and fidelity only).

    python benchmarks/frameworks.py [--models paddle_mobilenet_v2,keras_mobilenet_v2] [--threads N]

Each model's candidates and its framework are timed side by side in one build (alternating blocks,
batch 1, the same threads). Results go to the `frameworks` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, markdown_table, write_section  # noqa: E402

from shipyard.bench import BenchConfig  # noqa: E402
from shipyard.machine import usable_cores as default_threads  # noqa: E402
from shipyard.pipeline.build import BuildOptions, build  # noqa: E402


def paddle_mobilenet_v2(folder: Path) -> str:
    import paddle

    paddle.seed(0)
    net = paddle.vision.models.mobilenet_v2(pretrained=False)
    net.eval()
    paddle.jit.save(
        net,
        str(folder / "model"),
        input_spec=[paddle.static.InputSpec([None, 3, 224, 224], "float32", "image")],
    )
    return f"paddle:{folder}"


def keras_mobilenet_v2(folder: Path) -> str:
    from shipyard.sources.tensorflow import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)).export(
        str(folder / "saved"), verbose=False
    )
    return f"tf:{folder / 'saved'}"


MODELS = {"paddle_mobilenet_v2": paddle_mobilenet_v2, "keras_mobilenet_v2": keras_mobilenet_v2}


def run(name: str, threads: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as work:
        spec = MODELS[name](Path(work))
        result = build(
            BuildOptions.create(
                spec,
                threads=threads,
                backends=["onnxruntime", "openvino"],
                precisions=["fp32", "int8"],
                max_drop=5,
                bench=BenchConfig(rounds=4, block_seconds=1.0),
                throughput_batch=8,
            )
        )
    rows = []
    for candidate in [result.baseline, *result.candidates]:
        timing, check = candidate.timing, candidate.verification
        if not (timing and timing.calls and check):
            rows.append([name, candidate.key, "–", "–", "–", candidate.why_failed[:80]])
            continue
        rows.append(
            [
                name,
                candidate.name or candidate.key,
                f"{timing.p50_ms:.2f}",
                f"{timing.p99_ms:.2f}",
                f"{result.speedup(candidate):.2f}×",
                f"{check.metric} {check.value:.2f} (synthetic)",
            ]
        )
        print(
            f"{name:20s} {candidate.key:34s} p50 {timing.p50_ms:9.3f} ms  "
            f"{result.speedup(candidate):5.2f}×",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    rows = [row for name in args.models.split(",") for row in run(name, args.threads)]
    table = markdown_table(
        ["model", "variant", "p50 ms", "p99 ms", "vs its framework", "quality vs its framework"],
        rows,
    )
    write_section(
        "frameworks",
        "## Models from other frameworks (`benchmarks/frameworks.py`)\n\n"
        + machine_line(args.threads)
        + "\n\n"
        + table
        + "\n\nThe baseline is the model in its own "
        "framework (Paddle Inference; TensorFlow running the SavedModel's serving signature), "
        "which is also "
        "what every candidate is verified against. Random weights and synthetic inputs: top-1 "
        "agreement "
        "measures fidelity to the framework, not task accuracy; random-weight logits are nearly "
        "equal, so a "
        "reduced-precision variant can flip every top-1 (agreement 0) while its values stay close: "
        "judge "
        "INT8 on real weights and data.",
    )


if __name__ == "__main__":
    main()
