"""Edge INT8: ncnn FP32 vs ncnn INT8 (calibrated by Shipyard), beside MNN and ONNX Runtime, in one
run.

Models: example:digits (real, labelled: accuracy), the tests' small CNN (unseen, labelled), and
torchvision MobileNetV3-Small with random convolution weights whose BatchNorm statistics are set
on crops of scikit-image's sample photos (so activations look like a real network's; no
downloads), judged by cosine × 100 against the source on held-out crops — fidelity, not task
accuracy. Every candidate is made, verified and timed by ``shipyard build`` itself (alternating
blocks, batch 1, the same threads for all), against torch eager.

Run: ``python benchmarks/edge_int8.py`` (about 3 minutes on 2 cores); writes its section of
docs/benchmarks.md.
"""

from __future__ import annotations

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
from quantization import BENCH, small_cnn  # noqa: E402

from shipyard.pipeline.build import BuildOptions  # noqa: E402

FACTORY = """
import torchvision

def make():
    return torchvision.models.mobilenet_v3_small(num_classes=100)
"""
SIZE = 160


def photo_crops(count: int, seed: int = 0):
    """ImageNet-normalised crops of scikit-image's sample photos, NCHW float32."""
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    photos = [
        data.astronaut(),
        data.chelsea(),
        data.coffee(),
        data.rocket(),
        data.hubble_deep_field(),
    ]
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top, left = rng.integers(0, 200, 2)
        crop = resize(photo[top : top + 300, left : left + 300], (SIZE, SIZE))
        crops.append(((crop - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)).transpose(2, 0, 1))
    return np.stack(crops).astype(np.float32)


def mobilenet_files(folder: Path) -> tuple[Path, Path, Path]:
    """MobileNetV3-Small: seeded random weights, BatchNorm statistics from photo crops, held-out
    crops as data."""
    import numpy as np
    import torch
    import torchvision
    from safetensors.torch import save_file

    (folder / "mobilenet.py").write_text(FACTORY)
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=100)
    model.train()
    with torch.no_grad():
        for batch in torch.from_numpy(photo_crops(256, seed=1)).split(32):
            model(batch)
    weights = folder / "mobilenet.safetensors"
    save_file({k: v.contiguous() for k, v in model.eval().state_dict().items()}, str(weights))
    data = folder / "mobilenet.npz"
    np.savez(data, image=photo_crops(256, seed=2))
    return folder / "mobilenet.py", weights, data


def main() -> None:
    import torch

    threads = torch.get_num_threads()
    rows: list[list[str]] = []
    common = dict(
        backends=["ncnn", "mnn", "onnxruntime"],
        precisions=["fp32", "int8"],
        bench=BENCH,
        max_drop=1.0,
        threads=threads,
        throughput_batch=2,
        time_budget=600.0,
    )  # the whole build, not just the rescue
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-edge-") as scratch:
        run_model("digits", BuildOptions.create("example:digits", **common), rows)
        publish(threads, rows)
        model, weights, data = small_cnn(Path(scratch))
        run_model(
            "small CNN (unseen)",
            BuildOptions.create(f"{model}:make", weights=weights, data=data, **common),
            rows,
        )
        publish(threads, rows)
        model, weights, data = mobilenet_files(Path(scratch))
        run_model(
            f"MobileNetV3-Small {SIZE}px (random conv weights, BN stats from photos)",
            BuildOptions.create(
                f"{model}:make", weights=weights, data=data, metric="cosine", **common
            ),
            rows,
        )
    publish(threads, rows)


def publish(threads: int, rows: list[list[str]]) -> None:
    write_section(
        "edge_int8",
        "\n\n".join(
            [
                "## Edge INT8: ncnn, MNN and ONNX Runtime (`benchmarks/edge_int8.py`)",
                machine_line(threads)
                + " Load average when written: {:.1f} / {:.1f} / {:.1f} (1/5/15 min).".format(
                    *os.getloadavg()
                ),
                "Metric: accuracy % on held-out labels for digits and the small CNN; mean cosine × "
                "100 against the source "
                "for MobileNetV3-Small (random convolution weights, BatchNorm statistics set on "
                "scikit-image photo crops, "
                "evaluated on other crops). Budget `--max-drop 1`; ★ = what the build chose. ncnn "
                "INT8 is calibrated by "
                "Shipyard (entropy); MNN INT8 stores INT8 weights and computes in float on x86.",
                markdown_table(CANDIDATE_HEADER, rows),
            ]
        ),
    )


if __name__ == "__main__":
    main()
