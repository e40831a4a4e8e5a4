"""A classifier package built with image pre/post-processing: JPEG bytes in, labels out, through
``shipyard.load`` and through a real server called by tritonclient, against the PyTorch pipeline."""

from __future__ import annotations

import importlib.util
import json
import textwrap

import numpy as np
import pytest

import shipyard
from shipyard.errors import DataError

pytestmark = [pytest.mark.backend("onnxruntime"), pytest.mark.slow]
skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("torchvision")

CLASSIFIER = textwrap.dedent("""
    import torch
    from torch import nn

    def make():
        torch.manual_seed(3)
        layers = []
        for c_in, c_out in ((3, 16), (16, 32), (32, 32)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out),
                       nn.ReLU()]
        model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 12))
        with torch.no_grad():
            model[-1].weight.mul_(20)   # spread the logits so top-5 is not a near tie
        return model.eval()
""")
LABELS = [f"label {i}" for i in range(12)]
CONFIG = {
    "image": {"resize": 80, "crop": 64},
    "postprocess": {"kind": "classify", "top_k": 5, "labels": LABELS},
}


def photos() -> list[np.ndarray]:
    return [skimage_data.chelsea(), skimage_data.astronaut(), skimage_data.coffee()]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build
    from shipyard.sources import InputHint

    root = tmp_path_factory.mktemp("classifier")
    (root / "classifier.py").write_text(CLASSIFIER)
    (root / "pre.json").write_text(json.dumps(CONFIG))
    options = BuildOptions.create(
        f"{root / 'classifier.py'}:make",
        input_hints=[InputHint("image", "float32", (3, 64, 64))],
        output_names=["logits"],
        backends=["onnxruntime"],
        preprocess=root / "pre.json",
        out=root / "package",
        threads=1,
        max_eval=32,
        bench=BenchConfig(rounds=1, block_seconds=0.05),
    )
    result = build(options)
    assert result.package is not None, [c.why_failed for c in result.candidates]
    spec = importlib.util.spec_from_file_location(
        "processing_test_classifier", root / "classifier.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return result.package, module.make(), root / "pre.json"


def jpegs() -> np.ndarray:
    from shipyard.processing.decode import encode_jpeg

    return np.array([encode_jpeg(p) for p in photos()], dtype=object)


def torch_answers(module, config_path, images: np.ndarray) -> dict[str, np.ndarray]:
    from shipyard.processing.config import load_config
    from shipyard.processing.decode import decode_image
    from shipyard.processing.reference import torch_classify

    return torch_classify(module, [decode_image(b) for b in images], load_config(config_path))


def test_manifest_declares_bytes_in_labels_out(classifier):
    package, _, _ = classifier
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["inputs"] == [
        {"name": "image", "datatype": "BYTES", "dtype": "bytes", "shape": [-1], "dims": ["batch"]}
    ]
    assert [(o["name"], o["datatype"], o["shape"]) for o in manifest["outputs"]] == [
        ("labels", "BYTES", [-1, 5]),
        ("scores", "FP32", [-1, 5]),
        ("indices", "INT64", [-1, 5]),
    ]
    assert {"processing/pre.onnx", "processing/post.onnx"} <= set(manifest["files"])
    for name in manifest["files"]:
        assert (package / name).is_file(), name


def test_package_top5_matches_the_pytorch_pipeline(classifier):
    package, module, config = classifier
    predictor = shipyard.load(package)
    images = jpegs()
    ours = predictor.run({"image": images})
    theirs = torch_answers(module, config, images)
    np.testing.assert_array_equal(ours["indices"], theirs["indices"])
    np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-4)
    assert ours["labels"][0].tolist() == [LABELS[i].encode() for i in theirs["indices"][0]]
    assert len({tuple(row) for row in ours["indices"].tolist()}) > 1, (
        "every photo got the same answer"
    )


def test_mixed_sizes_and_bad_requests(classifier):
    package, _, _ = classifier
    predictor = shipyard.load(package)
    images = jpegs()
    one_by_one = [
        predictor.run({"image": images[i : i + 1]})["indices"][0] for i in range(len(images))
    ]
    np.testing.assert_array_equal(predictor.run({"image": images})["indices"], np.stack(one_by_one))
    with pytest.raises(DataError, match="cannot decode"):
        predictor.run({"image": np.array([b"not an image"], dtype=object)})
    with pytest.raises(DataError, match="expected \\['image'\\]"):
        predictor.run({"pixels": images})


@pytest.mark.backend("tritonclient")
def test_tritonclient_sends_a_jpeg_and_gets_the_pytorch_top5(classifier):
    import tritonclient.grpc as tg
    import tritonclient.http as th

    from shipyard.serve import Server, ServerConfig

    package, module, config = classifier
    images = jpegs()
    theirs = torch_answers(module, config, images)
    server = Server([package], ServerConfig(http_port=0, grpc_port=0))
    with server.running():
        for client_module, port in ((th, server.http_port), (tg, server.grpc_port)):
            client = client_module.InferenceServerClient(f"127.0.0.1:{port}")
            for index in range(len(images)):
                request = client_module.InferInput("image", [1], "BYTES")
                request.set_data_from_numpy(images[index : index + 1])
                reply = client.infer("classifier", [request])
                expected = [LABELS[i].encode() for i in theirs["indices"][index]]
                assert reply.as_numpy("labels")[0].tolist() == expected
                np.testing.assert_allclose(
                    reply.as_numpy("scores")[0], theirs["scores"][index], atol=1e-4
                )
