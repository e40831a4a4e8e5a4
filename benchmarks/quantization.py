"""FP32 vs INT8 (and FP16 on digits) on ONNX Runtime and OpenVINO, accuracy/fidelity beside
latency, in one run.

Models: example:digits (real, labelled), example:minilm (real all-MiniLM-L6-v2, fidelity = mean
cosine × 100 to the source), torchvision ResNet-50 and MobileNetV3-Large with *random* weights
(seeded; no downloads), judged by cosine × 100 to the source on synthetic inputs — so their
"accuracy" column is fidelity, not task accuracy. Every candidate is made and measured by
``shipyard build`` itself (alternating blocks, batch 1, same threads), against torch eager.

MiniLM is also timed end to end: the built package taking text (tokenizer inside) against
sentence-transformers' own ``encode`` (tokenizer + torch eager), in alternating blocks.

``--part recipes`` compares INT8 *recipes* on two real models outside the build, quality and
batch-1 speed side by side in one process (alternating blocks): MiniLM on ONNX Runtime (dynamic
INT8 against NNCF's static QDQ with SmoothQuant at each alpha and with the alpha Shipyard chooses
on held-out calibration sentences) and on OpenVINO; MobileNetV2 with its real ImageNet weights on
labelled photo crops (ONNX Runtime's calibrators MinMax / Entropy / Percentile, symmetric and
asymmetric activations, against NNCF's recipe on ONNX Runtime and on OpenVINO, and the ablations
that say where ORT's own recipe loses accuracy).

Run: ``python benchmarks/quantization.py [--part builds|recipes|all]`` (builds about 10 minutes,
recipes about 6 on 2 cores); each part writes its block of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import (  # noqa: E402
    CANDIDATE_HEADER,
    machine_line,
    markdown_table,
    run_model,
    write_section,
)

from shipyard.bench import BenchConfig, time_blocks  # noqa: E402
from shipyard.pipeline.build import BuildOptions  # noqa: E402

BENCH = BenchConfig(rounds=3, block_seconds=0.3)
RECIPES = "quantization-recipes"
FACTORY = """
import torch, torchvision

def resnet50():
    torch.manual_seed(0)
    return torchvision.models.resnet50()

def mobilenet_v3():
    torch.manual_seed(0)
    return torchvision.models.mobilenet_v3_large()
"""


def small_cnn(folder: Path) -> tuple[Path, Path, Path]:
    """The tests' small CNN (tests/conftest.py), trained the same way: a model the tool never
    saw."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import write_small_cnn

    files = write_small_cnn(folder)
    return files["model"], files["weights"], files["data"]


def minilm_end_to_end(package: Path) -> str:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    import shipyard
    from shipyard.sources.examples.minilm import model_folder

    text = "A quick benchmark sentence about shipping models to production."
    model = SentenceTransformer(str(model_folder()), device="cpu")
    predictor = shipyard.load(package)
    feed = {"text": np.array([text.encode()], dtype=object)}
    stats = time_blocks(
        {"st": lambda: model.encode([text]), "pkg": lambda: predictor.run(feed)}, BENCH
    )
    ratio = stats["st"].p50_ms / stats["pkg"].p50_ms
    return (
        f"MiniLM end to end at batch 1 (text in, embedding out): sentence-transformers encode "
        f"(tokenizer + torch eager) p50 {stats['st'].p50_ms:.2f} ms, the package "
        f"({predictor.backend}, {predictor.manifest['precision']}) p50 {stats['pkg'].p50_ms:.2f} "
        "ms → "
        f"**{ratio:.2f}×**."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("builds", "recipes", "all"), default="all")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.part in ("builds", "all"):
        builds(args.threads)
    if args.part in ("recipes", "all"):
        from quantization_recipes import recipes

        write_recipes(recipes(args.threads))


def write_recipes(markdown: str) -> None:
    """The recipes block lives inside the quantisation section, so both parts rerun separately."""
    from _report import DOC

    if f"<!-- begin:{RECIPES} -->" not in (DOC.read_text() if DOC.exists() else ""):
        write_section(
            "quantization",
            _section_text() + f"\n\n<!-- begin:{RECIPES} -->\n<!-- end:{RECIPES} -->",
        )
    write_section(RECIPES, markdown)


def _section_text() -> str:
    import re

    from _report import DOC

    text = DOC.read_text() if DOC.exists() else ""
    found = re.search(r"<!-- begin:quantization -->\n(.*?)\n<!-- end:quantization -->", text, re.S)
    return found.group(1) if found else ""


def builds(threads: int) -> None:
    rows: list[list[str]] = []
    # FP16 only on digits: on this CPU it is a size win, not a speed win, and every extra candidate
    # of a
    # big model costs minutes of build time. Throughput batches stay small for the same reason.
    common = dict(
        backends=["onnxruntime", "openvino"],
        precisions=["fp32", "int8"],
        bench=BENCH,
        max_drop=1.0,
        threads=threads,
        throughput_batch=2,
        time_budget=900.0,
    )  # the whole build, not just the rescue
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-q-") as scratch:
        factory = Path(scratch) / "vision.py"
        factory.write_text(FACTORY)
        run_model(
            "digits",
            BuildOptions.create(
                "example:digits", **{**common, "precisions": ["fp32", "fp16", "int8"]}
            ),
            rows,
        )
        publish(threads, rows, "")
        model, weights, data = small_cnn(Path(scratch))
        run_model(
            "small CNN (tests' conftest, unseen; INT8 only)",
            BuildOptions.create(
                f"{model}:make", weights=weights, data=data, **{**common, "precisions": ["int8"]}
            ),
            rows,
        )
        publish(threads, rows, "")
        from shipyard.sources import InputHint

        hints = [InputHint("image", "float32", (3, 224, 224))]
        for name in ("mobilenet_v3", "resnet50"):
            run_model(
                f"{name} (random weights)",
                BuildOptions.create(
                    f"{factory}:{name}",
                    input_hints=hints,
                    metric="cosine",
                    max_eval=32,
                    calibration_size=32,
                    **common,
                ),
                rows,
            )
            publish(threads, rows, "")
        package = Path(scratch) / "minilm"
        from shipyard.sources.examples.minilm import SENTENCES

        run_model(
            "minilm",
            BuildOptions.create("example:minilm", data=SENTENCES, out=package, **common),
            rows,
        )
        publish(threads, rows, "")
        end_to_end = minilm_end_to_end(package)
    publish(threads, rows, end_to_end)
    print(end_to_end)


def publish(threads: int, rows: list[list[str]], end_to_end: str) -> None:
    """Write the section so far (each model's rows land as soon as it is built)."""
    import re

    kept = re.search(rf"<!-- begin:{RECIPES} -->.*?<!-- end:{RECIPES} -->", _section_text(), re.S)
    write_section(
        "quantization",
        "\n\n".join(
            [
                "## Quantisation: FP32 vs FP16 vs INT8 (`benchmarks/quantization.py`)",
                machine_line(threads)
                + " Load average when written: {:.1f} / {:.1f} / {:.1f} (1/5/15 min); torch eager "
                "(OpenMP) suffers most when other jobs share the cores, so read its ratios with "
                "that in mind.".format(*os.getloadavg()),
                "Metric: accuracy % for digits (held-out labels); mean cosine × 100 against the "
                "source model for "
                "MiniLM and for the torchvision models, which carry **random weights** (seeded, no "
                "downloads) and run on "
                "synthetic inputs — fidelity, not task accuracy. Budget `--max-drop 1`; ★ = what "
                "the build chose. "
                "Every number comes from `shipyard build` in this run (alternating blocks, "
                "medians).",
                markdown_table(CANDIDATE_HEADER, rows),
                end_to_end,
                "This run asks for `--precisions fp32,fp16,int8` explicitly; the default, `auto`, "
                "tries FP32 plus what "
                "the CPU runs natively (INT8 only with real calibration data; see the "
                "`native-precisions` section). "
                "FP16 on this CPU (no native FP16 arithmetic) is shown as measured: it is a size "
                "win, rarely a speed win here.",
                kept.group(0) if kept else "",
            ]
        ),
    )


if __name__ == "__main__":
    main()
