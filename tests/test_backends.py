import numpy as np
import pytest

from shipyard.backends import get_backend
from shipyard.backends.base import check_feed
from shipyard.errors import DataError, UsageError
from shipyard.records import Signature, TensorSpec

SIGNATURE = Signature(
    (TensorSpec("image", "float32", ("batch", 1, 8, 8)),),
    (TensorSpec("logits", "float32", ("batch", 10)),),
)


def test_feed_checks_name_rank_size_and_dtype():
    good = np.zeros((2, 1, 8, 8), np.float32)
    assert check_feed(SIGNATURE, {"image": good})["image"] is good
    assert check_feed(SIGNATURE, {"image": good.astype(np.float64)})["image"].dtype == np.float32
    with pytest.raises(DataError, match=r"missing \['image'\]; unknown \['img'\]"):
        check_feed(SIGNATURE, {"img": good})
    with pytest.raises(DataError, match="expected 4 dimensions"):
        check_feed(SIGNATURE, {"image": good[0]})
    with pytest.raises(DataError, match="size 9 on axis 2; expected 8"):
        check_feed(SIGNATURE, {"image": np.zeros((2, 1, 9, 8), np.float32)})
    with pytest.raises(DataError, match="dtype <U1"):
        check_feed(SIGNATURE, {"image": np.full((1, 1, 8, 8), "x")})


def test_unknown_backend_names_the_choices():
    with pytest.raises(UsageError, match="onnxruntime"):
        get_backend("tensorflow-lite")


@pytest.fixture(scope="module")
def digits_artifacts(tmp_path_factory):
    from shipyard.records import Recipe
    from shipyard.sources import load_source
    from shipyard.workshop import Workshop

    source = load_source("example:digits")
    workshop = Workshop(source, tmp_path_factory.mktemp("artifacts"))
    onnx = Recipe().then("export", format="onnx")
    made = {
        "onnxruntime": workshop.make(onnx),
        "openvino": workshop.make(onnx.then("convert", format="openvino")),
        "torchscript": workshop.make(Recipe().then("export", format="torchscript")),
        "torch": workshop.make(Recipe().then("export", format="torch-export")),
    }
    return source, made


@pytest.mark.parametrize("backend", ["torch", "torchscript", "onnxruntime", "openvino"])
def test_every_cpu_backend_matches_the_source(digits_artifacts, backend):
    import torch

    source, made = digits_artifacts
    ok, why = get_backend(backend).available()
    if not ok:
        pytest.skip(why)
    x = source.example_data.inputs["image"][:5]
    with torch.no_grad():
        expected = source.module(torch.from_numpy(x)).numpy()
    session = get_backend(backend).load(made[backend], threads=1)
    got = session.run({"image": x})["logits"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert session.run({"image": x[:1]})["logits"].shape == (1, 10)  # dynamic batch axis
