"""Image pre-processing and post-processing graphs against their PyTorch / numpy references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shipyard.errors import DataError, UsageError
from shipyard.processing.config import config_from_json, load_config

pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")
PHOTOS = ("chelsea", "astronaut", "coffee")


def _session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.backend("onnxruntime")
@pytest.mark.parametrize(
    "image",
    [
        {"resize": 256, "crop": 224},
        {
            "resize": [100, 140],
            "layout": "NHWC",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
        },
        {"resize": 73, "crop": [64, 48], "antialias": False},
    ],
)
def test_image_graph_matches_torchvision(image):
    pytest.importorskip("torchvision")
    from shipyard.processing.image_graph import image_graph
    from shipyard.processing.reference import torch_preprocess

    config = config_from_json({"image": image}).image
    session = _session(image_graph(config, "image"))
    for name in PHOTOS:
        pixels = getattr(skimage_data, name)()
        ours = session.run(None, {"pixels": pixels[None]})[0]
        theirs = torch_preprocess(pixels, config).numpy()
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 5e-4, name  # 1/255 would be ~2e-2 after normalising


@pytest.mark.backend("onnxruntime")
def test_classify_graph_is_softmax_top_k():
    from shipyard.processing.config import PostProcess
    from shipyard.processing.post_graph import classify_graph

    logits = np.random.default_rng(0).standard_normal((4, 12)).astype(np.float32)
    scores, indices = _session(classify_graph(PostProcess(top_k=5), "logits", 12)).run(
        None, {"logits": logits}
    )
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = np.argsort(-probabilities, axis=1)[:, :5]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(probabilities, expected, 1), atol=1e-6)


@pytest.mark.backend("onnxruntime")
def test_embed_graph_normalises_rows():
    from shipyard.processing.post_graph import embed_graph

    rows = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    rows[2] = 0
    (unit,) = _session(embed_graph("embedding_raw", 8)).run(None, {"embedding_raw": rows})
    np.testing.assert_allclose(np.linalg.norm(unit[:2], axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(
        unit[:2], rows[:2] / np.linalg.norm(rows[:2], axis=1, keepdims=True), atol=1e-6
    )
    assert np.all(unit[2] == 0)


@pytest.mark.parametrize(
    "data, words",
    [
        ({"image": {"resize": 256}}, "fixed output size"),
        ({"image": {"crop": 224, "layout": "CHW"}}, "image.layout"),
        ({"image": {"crop": 0}}, "image.crop"),
        ({"postprocess": {"kind": "segment"}}, "postprocess.kind"),
        ({"pre": {}}, "unknown keys"),
    ],
)
def test_bad_configs_say_what_is_wrong(data, words):
    with pytest.raises(UsageError, match=words):
        config_from_json(data)


def test_config_file_with_label_file(tmp_path):
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    path = tmp_path / "pre.json"
    path.write_text(
        json.dumps({"image": {"crop": 32}, "postprocess": {"labels": "labels.txt", "top_k": 1}})
    )
    config = load_config(path)
    assert config.post.labels == ("cat", "dog") and config.image.crop == (32, 32)
    path.write_text("{not json")
    with pytest.raises(UsageError, match="JSON"):
        load_config(path)


def test_decode_rejects_what_is_not_an_image():
    from shipyard.processing import decode

    pixels = skimage_data.chelsea()
    assert decode.decode_image(decode.encode_jpeg(pixels)).shape == pixels.shape
    with pytest.raises(DataError, match="cannot decode"):
        decode.decode_image(b"definitely not a jpeg")
    with pytest.raises(DataError, match="no image"):
        decode.decode_images(np.array([], dtype=object))


def test_decode_bounds_pixels(monkeypatch):
    from shipyard.processing import decode

    monkeypatch.setattr(decode, "MAX_PIXELS", 100)
    with pytest.raises(DataError, match="larger than the limit"):
        decode.decode_image(decode.encode_jpeg(np.zeros((20, 20, 3), np.uint8)))
