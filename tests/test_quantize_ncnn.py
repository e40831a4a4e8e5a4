"""ncnn INT8: the .param/.bin reader, calibration, real INT8 packages, and the mixed-precision
rescue."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

import shipyard
from shipyard.bench import BenchConfig
from shipyard.errors import ConversionError

pytestmark = [
    pytest.mark.backend("ncnn"),
    pytest.mark.backend("torch"),
    pytest.mark.usefixtures("no_artifact_cache"),
]
FAST = BenchConfig(rounds=1, block_seconds=0.05)

DEPTHWISE = textwrap.dedent("""
    from torch import nn

    def make():
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),  # depthwise: per-group scales
            nn.Conv2d(16, 24, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(24, 6))
""")


def _make(source, recipe, folder):
    from shipyard.dataset import load_npz
    from shipyard.workshop import Workshop

    return Workshop(source, folder, load_npz(folder.parent / "data.npz", source.signature)).make(
        recipe
    )


@pytest.fixture(scope="module")
def depthwise(tmp_path_factory):
    """A small depthwise-separable net (random weights), its ncnn FP32 artifact and its source."""
    from shipyard.backends.ncnn import NCNN
    from shipyard.inputs import hints_from_npz
    from shipyard.sources import load_source

    folder = tmp_path_factory.mktemp("depthwise")
    (folder / "model.py").write_text(DEPTHWISE)
    images = np.random.default_rng(3).normal(size=(64, 3, 12, 12)).astype(np.float32)
    np.savez(folder / "data.npz", image=images)
    source = load_source(
        f"{folder / 'model.py'}:make", None, hints_from_npz(folder / "data.npz"), None
    )
    return {
        "source": source,
        "fp32": _make(source, NCNN, folder / "work"),
        "images": images,
        "folder": folder,
    }


def test_ncnn_files_are_read_and_written_back_byte_for_byte(depthwise):
    from shipyard.backends.ncnn.format import read_graph, split_weights

    param = depthwise["fp32"].path
    graph = read_graph(param)
    assert [layer.type for layer in graph.layers][:3] == [
        "Input",
        "Convolution",
        "ConvolutionDepthWise",
    ]
    assert read_graph_text(graph.to_text(), param.parent / "again.param") == read_graph_text(
        param.read_text(), param
    )
    weights = param.with_suffix(".bin").read_bytes()
    assert b"".join(b.data for blobs in split_weights(graph, weights) for b in blobs) == weights
    with pytest.raises(ConversionError, match="the layers account for"):
        split_weights(graph, weights + b"\0\0\0\0")
    (param.parent / "broken.param").write_text("not a graph\n")
    with pytest.raises(ConversionError, match="is not an ncnn .param file"):
        read_graph(param.parent / "broken.param")


def read_graph_text(text, path):
    from shipyard.backends.ncnn.format import read_graph

    path.write_text(text)
    return [(l.type, l.name, l.bottoms, l.tops, l.params) for l in read_graph(path).layers]


def test_entropy_threshold_clips_rare_outliers_but_not_a_plain_range():
    from shipyard.backends.ncnn.int8 import HISTOGRAM_BINS, entropy_threshold

    rng = np.random.default_rng(0)
    bulk = np.abs(rng.normal(0, 1, 200_000))
    values = np.concatenate([bulk, [40.0, 41.0]])  # two outliers far out
    histogram = np.histogram(values, HISTOGRAM_BINS, (0, values.max()))[0]
    threshold = entropy_threshold(histogram, values.max() / HISTOGRAM_BINS)
    assert 2.5 < threshold < 10  # clipped near the bulk, not at 41
    uniform = np.histogram(rng.uniform(0, 1, 200_000), HISTOGRAM_BINS, (0, 1))[0]
    assert entropy_threshold(uniform, 1 / HISTOGRAM_BINS) > 0.9


def test_a_spiky_histogram_keeps_its_full_range():
    """KL alone clips an input of 17 grey levels (sklearn's digits) at the first level; the
    squared-error check
    keeps the full range, which represents every level exactly."""
    from shipyard.backends.ncnn.int8 import HISTOGRAM_BINS, entropy_threshold, safer_threshold

    levels = np.random.default_rng(1).integers(1, 17, 50_000) / 16
    histogram = np.histogram(levels, HISTOGRAM_BINS, (0, 1))[0]
    assert entropy_threshold(histogram, 1 / HISTOGRAM_BINS) < 0.2
    assert safer_threshold(histogram, 1.0) == 1.0
    bulk = np.abs(np.random.default_rng(0).normal(0, 1, 200_000))
    values = np.concatenate([bulk, [40.0]])
    assert (
        safer_threshold(np.histogram(values, HISTOGRAM_BINS, (0, 40.0))[0], 40.0) < 10
    )  # outliers still clipped


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_depthwise_and_dense_layers_run_in_int8_close_to_fp32(depthwise, method):
    from shipyard.backends.ncnn import NCNN
    from shipyard.backends.ncnn.session import NcnnSession
    from shipyard.records import Recipe, Step

    recipe = Recipe(
        NCNN.steps + (Step("quantize", {"method": "ncnn-int8", "calibration": method}),)
    )
    int8 = _make(depthwise["source"], recipe, depthwise["folder"] / "work")
    from shipyard.backends.ncnn.format import read_graph, split_weights

    scale_terms = [
        (layer.type, layer.params.get(8))
        for layer in read_graph(int8.path).layers
        if 8 in layer.params
    ]
    # per-channel weights (2), per-group for depthwise (1); +100 where the output feeds an INT8 conv
    # directly
    assert scale_terms == [
        ("Convolution", "102"),
        ("ConvolutionDepthWise", "101"),
        ("Convolution", "2"),
        ("InnerProduct", "2"),
    ]
    assert int8.size_bytes() < 0.5 * depthwise["fp32"].size_bytes()  # INT8 weights really stored
    weights = int8.path.with_suffix(".bin").read_bytes()  # the reader accounts for INT8 files too
    assert (
        b"".join(b.data for blobs in split_weights(read_graph(int8.path), weights) for b in blobs)
        == weights
    )
    images = depthwise["images"][:16]
    fp32 = NcnnSession(depthwise["fp32"], 1).run({"image": images})["output"]
    got = NcnnSession(int8, 1).run({"image": images})["output"]
    cosine = (fp32 * got).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 0.99
    assert np.abs(got - fp32).max() > 1e-5  # it did not silently run FP32


def test_requantised_blobs_are_compared_as_values(depthwise):
    """ncnn extracts a blob a layer hands on in INT8 as its integer steps; the layer-wise view
    scales them back."""
    from shipyard.backends.ncnn import NCNN
    from shipyard.backends.ncnn.int8 import int8_outputs
    from shipyard.backends.ncnn.layers import ncnn_intermediates
    from shipyard.quantize.layerwise import tensor_error
    from shipyard.records import Recipe, Step

    recipe = Recipe(
        NCNN.steps + (Step("quantize", {"method": "ncnn-int8", "calibration": "minmax"}),)
    )
    int8 = _make(depthwise["source"], recipe, depthwise["folder"] / "work")
    requantised = int8_outputs(int8.path)
    assert len(requantised) == 2 and all(scale > 0 for scale in requantised.values())
    feed = {"image": depthwise["images"][:4]}
    reference, quantized = (
        ncnn_intermediates(depthwise["fp32"], feed),
        ncnn_intermediates(int8, feed),
    )
    for blob in requantised:
        error, cosine = tensor_error(reference[blob], quantized[blob])
        assert cosine > 0.99 and error < 0.1, (blob, error, cosine)


def test_unknown_calibration_is_refused(depthwise, tmp_path):
    from shipyard.backends.ncnn.int8 import quantize_ncnn_int8
    from shipyard.dataset import Dataset

    with pytest.raises(
        ConversionError,
        match="unknown ncnn calibration 'percentile'; expected one of minmax, entropy",
    ):
        quantize_ncnn_int8(
            depthwise["fp32"],
            tmp_path / "q.param",
            Dataset({"image": depthwise["images"]}),
            "percentile",
        )


@pytest.mark.slow
def test_int8_ncnn_package_is_chosen_within_budget_and_loads(small_cnn, tmp_path):
    from shipyard.cli.main import main

    out = tmp_path / "pkg"
    assert (
        main(
            [
                "build",
                f"{small_cnn['model']}:make",
                "--weights",
                str(small_cnn["weights"]),
                "--data",
                str(small_cnn["data"]),
                "--backends",
                "ncnn",
                "--precisions",
                "int8",
                "--max-drop",
                "1",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["backend"], manifest["precision"]) == ("ncnn", "int8")
    assert manifest["recipe"][-1] == {
        "step": "quantize",
        "method": "ncnn-int8",
        "calibration": "entropy",
    }
    assert " 8=2" in (out / "model" / "model.param").read_text()
    predictor = shipyard.load(out)
    with np.load(small_cnn["data"]) as archive:
        images, labels = archive["image"], archive["labels"]
    logits = predictor.run({"image": images})["output"]
    assert (logits.argmax(1) == labels).mean() >= 0.95
    assert predictor.run({"image": images[:1]})["output"].shape == (1, 4)
    predictor.close()


@pytest.fixture(scope="module")
def very_hostile_weights(small_cnn):
    """Like ``hostile_weights`` with ×1e5: ncnn's entropy calibration sometimes survives ×1000 on
    this easy task."""
    from conftest import write_hostile_weights

    return write_hostile_weights(small_cnn, 1e5)


@pytest.mark.slow
def test_hostile_model_is_rescued_on_ncnn_by_keeping_the_broken_layer_fp32(
    small_cnn, very_hostile_weights, tmp_path
):
    from shipyard.pipeline.build import BuildOptions, build
    from shipyard.search.debug_precision import debug_precision

    hostile_weights = very_hostile_weights
    result = build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=hostile_weights,
            data=small_cnn["data"],
            max_drop=1.0,
            backends=["ncnn"],
            precisions=["int8"],
            threads=1,
            out=tmp_path / "pkg",
            bench=FAST,
        )
    )
    plain = [c for c in result.candidates if c.precision == "int8"]
    assert plain and not plain[0].passed  # per-tensor input scales break it
    assert result.chosen.precision == "mixed" and result.chosen.verification.drop <= 1.0
    kept = result.chosen.recipe.steps[-1].options["keep_fp32"]
    report = debug_precision(
        f"{small_cnn['model']}:make",
        small_cnn["data"],
        hostile_weights,
        backend="ncnn",
        calibration="entropy",
        samples=8,
    )
    assert report.layers[0].op_type == "Convolution" and report.layers[0].node in kept
    assert 1 <= len(kept) <= 2
