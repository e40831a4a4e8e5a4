"""``paddle:DIR``: a model saved with paddle.jit.save, taken the whole road and compared with
Paddle itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("paddle")
pytest.importorskip("paddle2onnx")

from framework_models import assert_matches_framework, random_npz, save_paddle_cnn  # noqa: E402

import shipyard  # noqa: E402
from shipyard.bench import BenchConfig  # noqa: E402
from shipyard.errors import SourceError  # noqa: E402
from shipyard.pipeline.build import BuildOptions, build  # noqa: E402
from shipyard.sources import load_source  # noqa: E402

QUICK = BenchConfig(rounds=1, block_seconds=0.05, max_block=10)


@pytest.fixture
def paddle_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIPYARD_CACHE", str(tmp_path / "cache"))  # every test converts for real
    folder = tmp_path / "paddle_model"
    eager = save_paddle_cnn(folder)
    return folder, eager


@pytest.mark.slow
def test_paddle_model_takes_the_whole_road(paddle_model, tmp_path):
    folder, eager = paddle_model
    data = random_npz(tmp_path / "d.npz", "image", (3, 16, 16), channel_shift=2.0)
    result = build(
        BuildOptions.create(
            f"paddle:{folder}",
            data=tmp_path / "d.npz",
            out=tmp_path / "pkg",
            precisions=["fp32", "fp16", "int8"],
            bench=QUICK,
            max_drop=5,
        )
    )
    assert (
        result.baseline.name
        == "baseline: source in Paddle Inference " + __import__("paddle").__version__
    )
    tried = {(c.backend, c.precision) for c in result.candidates if not c.error}
    assert {
        ("onnxruntime", "fp32"),
        ("onnxruntime", "fp16"),
        ("onnxruntime", "int8"),
        ("openvino", "fp32"),
        ("openvino", "int8"),
    } <= tried
    manifest = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == [-1, 3, 16, 16] and manifest["outputs"][0][
        "shape"
    ] == [-1, 5]
    assert any("paddle2onnx" in note for note in manifest["notes"])
    predictor = shipyard.load(tmp_path / "pkg")
    output = predictor.signature.output_names[0]
    got = predictor.run({"image": data})[output]
    assert_matches_framework(result, got, eager(data), manifest["precision"])


def test_paddle_source_is_verified_against_paddle_inference(paddle_model):
    folder, eager = paddle_model
    source = load_source(f"paddle:{folder}")
    assert source.kind == "onnx" and source.reference.framework == "paddle"
    assert source.signature.inputs[0].shape == ("batch", 3, 16, 16)
    from shipyard.frameworks import reference_session

    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    from shipyard.frameworks.paddle import PaddleSession

    session = reference_session(source, threads=1)
    assert isinstance(session, PaddleSession)  # Paddle itself, not the converted graph
    reference = session.run({"image": x})[source.signature.output_names[0]]
    np.testing.assert_allclose(reference, eager(x), rtol=1e-5, atol=1e-5)
    assert load_source(f"paddle:{folder / 'model.json'}").content_hash == source.content_hash


def test_an_older_pdmodel_program_is_paired_with_paddle_by_position(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIPYARD_CACHE", str(tmp_path / "cache"))
    eager = save_paddle_cnn(tmp_path / "zoo", old_program=True)
    source = load_source(str(tmp_path / "zoo" / "inference.pdmodel"))
    from shipyard.backends import get_backend
    from shipyard.frameworks import reference_session
    from shipyard.records import Artifact

    x = np.random.default_rng(4).standard_normal((2, 3, 16, 16)).astype(np.float32)
    name = source.signature.output_names[
        0
    ]  # paddle2onnx's fetch_name_0; Paddle calls it linear_*.tmp_*
    reference = reference_session(source, threads=1).run({"image": x})[name]
    converted = (
        get_backend("onnxruntime")
        .load(Artifact(source.path, "onnx", source.signature), 1)
        .run({"image": x})[name]
    )
    np.testing.assert_allclose(reference, eager(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(converted, eager(x), rtol=1e-4, atol=1e-4)


def test_paddle_content_hash_follows_the_parameters(paddle_model):
    folder, _ = paddle_model
    before = load_source(f"paddle:{folder}").content_hash
    params = folder / "model.pdiparams"
    raw = bytearray(params.read_bytes())
    raw[-1] ^= 1
    params.write_bytes(bytes(raw))
    assert load_source(f"paddle:{folder}").content_hash != before


def test_paddle_mistakes_get_one_sentence(paddle_model, tmp_path):
    folder, _ = paddle_model
    with pytest.raises(SourceError, match="does not exist"):
        load_source(f"paddle:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "weights.pdparams").write_bytes(b"not an inference model")
    with pytest.raises(
        SourceError, match=r"0 inference models .*weights\.pdparams.*paddle\.jit\.save"
    ):
        load_source(f"paddle:{tmp_path / 'empty'}")
    (folder / "model.pdiparams").unlink()
    with pytest.raises(SourceError, match="no parameters file model.pdiparams"):
        load_source(f"paddle:{folder / 'model.json'}")
