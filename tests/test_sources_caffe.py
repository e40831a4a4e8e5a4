"""``caffe:NET:WEIGHTS``: a net written from Caffe's protobuf definition, converted by caffe-onnx,
checked
layer by layer, taken the whole road and compared with Caffe's arithmetic for the whole net."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shipyard.sources.caffe.converter import installed_version

if not installed_version():
    pytest.skip(
        "caffe-onnx is not installed in its folder (see shipyard doctor)", allow_module_level=True
    )

from framework_models import assert_matches_framework, random_npz, write_caffe_net  # noqa: E402

import shipyard  # noqa: E402
from shipyard.bench import BenchConfig  # noqa: E402
from shipyard.errors import SourceError  # noqa: E402
from shipyard.pipeline.build import BuildOptions, build  # noqa: E402
from shipyard.sources import load_source  # noqa: E402
from shipyard.sources.caffe import arithmetic  # noqa: E402

QUICK = BenchConfig(rounds=1, block_seconds=0.05, max_block=10)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIPYARD_CACHE", str(tmp_path / "cache"))  # every test converts for real


def caffe_forward(x: np.ndarray, caffemodel_dir) -> np.ndarray:
    """The whole test net in Caffe's arithmetic, from the weights caffe-onnx's reader dumped."""
    blobs = dict(np.load(next(caffemodel_dir.glob("converted/caffe-*/blobs.npz"))))
    w = lambda name: [blobs[f"{name}/{i}"] for i in range(3) if f"{name}/{i}" in blobs]  # noqa: E731
    conv = {"convolution_param": {"kernel_size": [3], "pad": [1]}}
    h = arithmetic.convolution([x], w("conv1"), conv)
    h = arithmetic.scale(
        [arithmetic.batch_norm([h], w("bn1"), {})],
        w("scale1"),
        {"scale_param": {"bias_term": True}},
    )
    h = arithmetic.pooling(
        [arithmetic.relu([h], [], {})], [], {"pooling_param": {"kernel_size": 3, "stride": 2}}
    )
    h = arithmetic.relu(
        [
            arithmetic.convolution(
                [h], w("conv2"), {"convolution_param": {**conv["convolution_param"], "group": 2}}
            )
        ],
        [],
        {},
    )
    return arithmetic.softmax([arithmetic.inner_product([h], w("fc"), {})], [], {})


@pytest.mark.slow
def test_caffe_net_takes_the_whole_road(tmp_path):
    prototxt, caffemodel = write_caffe_net(tmp_path / "net")
    data = random_npz(tmp_path / "d.npz", "data", (3, 12, 12))
    result = build(
        BuildOptions.create(
            f"caffe:{prototxt}:{caffemodel}",
            data=tmp_path / "d.npz",
            out=tmp_path / "pkg",
            precisions=["fp32", "int8"],
            bench=QUICK,
            max_drop=5,
        )
    )
    assert result.baseline.name.startswith("baseline: source in caffe-onnx")
    assert any("8 of 8 layers agree with Caffe's arithmetic" in note for note in result.notes)
    tried = {(c.backend, c.precision) for c in result.candidates if not c.error}
    assert {
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("openvino", "fp32"),
        ("openvino", "int8"),
    } <= tried
    manifest = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    assert manifest["inputs"][0]["name"] == "data" and manifest["inputs"][0]["shape"] == [
        -1,
        3,
        12,
        12,
    ]
    assert manifest["outputs"] == [
        {
            "name": "prob",
            "datatype": "FP32",
            "dtype": "float32",
            "shape": [-1, 5],
            "dims": ["batch", 5],
        }
    ]
    got = shipyard.load(tmp_path / "pkg").run({"data": data})["prob"]
    assert_matches_framework(
        result,
        got,
        caffe_forward(data.astype(np.float64), tmp_path / "cache"),
        manifest["precision"],
    )


def test_every_layer_is_checked_and_the_batch_is_dynamic(tmp_path):
    prototxt, caffemodel = write_caffe_net(tmp_path / "net")
    source = load_source(f"caffe:{prototxt}:{caffemodel}")
    checks = json.loads(
        next((tmp_path / "cache").glob("converted/caffe-*/checks.json")).read_text()
    )
    assert [(c["name"], c["type"], c["checked"]) for c in checks] == [
        ("conv1", "Convolution", True),
        ("bn1", "BatchNorm+Scale", True),
        ("relu1", "ReLU", True),
        ("pool1", "Pooling", True),
        ("conv2", "Convolution", True),
        ("relu2", "ReLU", True),
        ("fc", "InnerProduct", True),
        ("prob", "Softmax", True),
    ]
    assert all(c["error"] < 1e-4 for c in checks)
    assert source.signature.inputs[0].shape == ("batch", 3, 12, 12)
    assert source.content_hash == load_source(f"caffe:{prototxt}:{caffemodel}").content_hash


def test_a_layer_caffe_onnx_cannot_convert_is_named(tmp_path):
    prototxt, caffemodel = write_caffe_net(tmp_path / "net", "tanh")
    with pytest.raises(
        SourceError, match=r"cannot convert these layers .*: tanh \(TanH\); it converts "
    ):
        load_source(f"caffe:{prototxt}:{caffemodel}")


def test_a_layer_converted_wrongly_is_named_by_the_check(tmp_path):
    # Caffe's average pooling divides border windows by the padded size; caffe-onnx's AveragePool
    # does not
    prototxt, caffemodel = write_caffe_net(tmp_path / "net", "avepad")
    with pytest.raises(
        SourceError, match=r"converts 1 layer\(s\) .* wrongly: pool1 \(Pooling\) differs"
    ):
        load_source(f"caffe:{prototxt}:{caffemodel}")


def test_caffe_mistakes_get_one_sentence(tmp_path):
    prototxt, caffemodel = write_caffe_net(tmp_path / "net")
    with pytest.raises(SourceError, match="expected caffe:NET.prototxt:WEIGHTS.caffemodel"):
        load_source(f"caffe:{prototxt}")
    with pytest.raises(SourceError, match="weights .* does not exist"):
        load_source(f"caffe:{prototxt}:{tmp_path / 'missing.caffemodel'}")
    (tmp_path / "garbage.prototxt").write_text("layer { name: ")
    with pytest.raises(SourceError, match="caffe-onnx cannot read .*garbage.prototxt"):
        load_source(f"caffe:{tmp_path / 'garbage.prototxt'}:{caffemodel}")
