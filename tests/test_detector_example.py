"""``example:detector``: SSDlite built into a package that takes JPEG bytes and returns boxes,
checked against torchvision's own detection pipeline on the same decoded images."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torchvision")
skimage_data = pytest.importorskip("skimage.data")
pytestmark = [pytest.mark.backend("onnxruntime"), pytest.mark.slow]


@pytest.fixture(scope="module")
def detector_package(tmp_path_factory):
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build

    options = BuildOptions.create(
        "example:detector",
        backends=["onnxruntime"],
        out=tmp_path_factory.mktemp("det") / "pkg",
        threads=1,
        max_eval=4,
        throughput_batch=2,
        bench=BenchConfig(rounds=1, block_seconds=0.05),
    )
    result = build(options)
    assert result.package is not None, [c.why_failed for c in result.candidates]
    return result.package


def photos() -> list[np.ndarray]:
    from shipyard.sources.examples.detector import shapes_images

    return [skimage_data.chelsea(), skimage_data.coffee(), *shapes_images(2, seed=11)]


def test_manifest_is_bytes_in_boxes_out(detector_package):
    manifest = json.loads((detector_package / "manifest.json").read_text())
    assert [(i["name"], i["datatype"]) for i in manifest["inputs"]] == [("image", "BYTES")]
    assert [(o["name"], o["datatype"], o["shape"]) for o in manifest["outputs"]] == [
        ("boxes", "FP32", [-1, 20, 4]),
        ("scores", "FP32", [-1, 20]),
        ("classes", "INT64", [-1, 20]),
        ("labels", "BYTES", [-1, 20]),
        ("count", "INT64", [-1]),
    ]


def test_boxes_match_torchvision_pipeline(detector_package):
    import shipyard
    from shipyard.processing.decode import decode_image, encode_jpeg
    from shipyard.sources.examples.detector import (
        LABELS,
        match_rate,
        reference_detections,
        reference_model,
    )

    jpegs = np.array([encode_jpeg(p) for p in photos()], dtype=object)
    ours = shipyard.load(detector_package).run({"image": jpegs})
    theirs = reference_detections(reference_model(), [decode_image(j) for j in jpegs])
    for index, expected in enumerate(theirs):
        count = int(ours["count"][index])
        assert count == len(expected["boxes"]) > 0
        boxes, classes = ours["boxes"][index, :count], ours["classes"][index, :count]
        assert match_rate(boxes, classes, expected, min_iou=0.99) >= 0.95, index
        np.testing.assert_allclose(
            np.sort(ours["scores"][index, :count]), np.sort(expected["scores"]), atol=1e-3
        )
        assert ours["labels"][index, 0] == LABELS[classes[0]].encode()
        assert np.all(ours["classes"][index, count:] == -1)
