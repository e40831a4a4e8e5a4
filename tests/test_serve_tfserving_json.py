"""TensorFlow Serving's REST predict JSON decoded and encoded against a model's signature, no
server."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from shipyard.records import Signature, TensorSpec
from shipyard.serve.errors import BadRequest, RequestTooLarge
from shipyard.serve.repository import ModelFace
from shipyard.serve.tfserving_json import parse_predict, predict_response

IMAGE = TensorSpec("image", "float32", ("batch", 2, 2))
MASK = TensorSpec("mask", "int64", ("batch", 2))
TEXT = TensorSpec("text", "bytes", ("batch",))


Y = TensorSpec("y", "float32", ("batch", 1))


def face(inputs, outputs=(Y,), name="m") -> ModelFace:
    return ModelFace(name, "3", "onnxruntime", Signature(tuple(inputs), tuple(outputs)), 8)


def parse(model, body, max_bytes=1 << 20):
    return parse_predict(model, json.dumps(body).encode(), max_bytes)


def test_row_and_columnar_requests_give_the_same_tensors():
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    model = face([IMAGE])
    bare = parse(model, {"instances": x.tolist()})
    named = parse(
        model,
        {"instances": [{"image": row} for row in x.tolist()], "signature_name": "serving_default"},
    )
    columnar = parse(model, {"inputs": x.tolist()})
    columnar_named = parse(model, {"inputs": {"image": x.tolist()}})
    for request in (bare, named, columnar, columnar_named):
        assert request.inputs["image"].dtype == np.float32
        np.testing.assert_array_equal(request.inputs["image"], x)
    assert (bare.row, named.row, columnar.row, columnar_named.row) == (True, True, False, False)


def test_two_inputs_by_row_are_stacked_per_name():
    model = face([IMAGE, MASK])
    request = parse(
        model,
        {
            "instances": [
                {"image": [[1, 2], [3, 4]], "mask": [1, 0]},
                {"mask": [1, 1], "image": [[5, 6], [7, 8]]},
            ]
        },
    )
    assert request.inputs["mask"].dtype == np.int64
    np.testing.assert_array_equal(request.inputs["mask"], [[1, 0], [1, 1]])
    assert request.inputs["image"].shape == (2, 2, 2)


def test_bytes_take_text_and_b64():
    model = face([TEXT])
    raw = bytes(range(256))
    request = parse(model, {"instances": ["héllo", {"b64": base64.b64encode(raw).decode()}]})
    assert request.inputs["text"].tolist() == ["héllo".encode(), raw]
    assert parse(model, {"inputs": {"text": ["a"]}}).inputs["text"].tolist() == [b"a"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({}, "exactly one of 'instances'"),
        ({"instances": [], "inputs": []}, "exactly one of 'instances'"),
        ({"instances": []}, "non-empty list"),
        (
            {"instances": [[[1, 2], [3, 4]]], "signature_name": "classify"},
            "signature_name 'classify'",
        ),
        ({"instances": [[[1, 2], [3]]]}, "ragged at depth 2"),
        ({"instances": [[[1, 2], [3, 4]], [[1, 2]]]}, "ragged at depth 1"),
        ({"instances": [[[[1]]]]}, "nested deeper than its 3 dimensions"),
        ({"instances": [[1, 2, 3, 4]]}, "shape [1, 4]"),
        ({"instances": [[[1, 2, 3], [4, 5, 6]]]}, "size 3 on axis 2"),
        ({"instances": [[["a", "b"], ["c", "d"]]]}, "non-numeric"),
        ({"inputs": {"pixels": [[[1, 2], [3, 4]]]}}, "'pixels' is not an input"),
        ({"instances": [{"image": [[1, 2], [3, 4]]}, [[1, 2], [3, 4]]]}, "mixes objects"),
    ],
)
def test_bad_requests_say_what_was_expected(body, fragment):
    with pytest.raises(BadRequest, match=None) as caught:
        parse(face([IMAGE]), body)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"instances": [{"b64": "not base64!"}]}, "not base64"),
        ({"instances": [3]}, "expected strings or"),
        ({"instances": [["a"], ["b"]]}, "nested deeper"),
    ],
)
def test_bad_bytes_say_what_was_expected(body, fragment):
    with pytest.raises(BadRequest) as caught:
        parse(face([TEXT]), body)
    assert fragment in str(caught.value)


def test_malformed_json_and_oversized_tensors_are_refused():
    model = face([IMAGE])
    with pytest.raises(BadRequest, match="malformed"):
        parse_predict(model, b'{"instances": [', 1 << 20)
    with pytest.raises(BadRequest, match="malformed"):
        parse_predict(model, b"[" * 100_000 + b"]" * 100_000, 1 << 30)
    with pytest.raises(RequestTooLarge):
        parse(model, {"instances": np.zeros((20, 2, 2)).tolist()}, max_bytes=64)


def test_a_bare_value_needs_a_single_input_model():
    with pytest.raises(BadRequest, match="object naming each input"):
        parse(face([IMAGE, MASK]), {"inputs": [[[1, 2], [3, 4]]]})


def test_answers_mirror_the_request_format():
    outputs = (
        TensorSpec("labels", "bytes", ("batch", 2)),
        TensorSpec("scores", "float32", ("batch", 2)),
        TensorSpec("png_bytes", "bytes", ("batch",)),
    )
    model = face([IMAGE], outputs)
    results = {
        "labels": np.array([[b"cat", b"dog"], [b"ox", b"\xff"]], dtype=object),
        "scores": np.array([[0.75, 0.25], [0.5, 0.5]], np.float32),
        "png_bytes": np.array([b"\x89PNG", b""], dtype=object),
    }
    rows = predict_response(model, results, row=True)["predictions"]
    assert rows[0] == {
        "labels": ["cat", "dog"],
        "scores": [0.75, 0.25],
        "png_bytes": {"b64": "iVBORw=="},
    }
    assert rows[1]["labels"] == ["ox", "\ufffd"] and rows[1]["png_bytes"] == {"b64": ""}
    columns = predict_response(model, results, row=False)["outputs"]
    assert columns["scores"] == [[0.75, 0.25], [0.5, 0.5]] and columns["labels"][1][0] == "ox"
    single = face([IMAGE])
    y = {"y": np.array([[1.5], [2.5]], np.float32)}
    assert predict_response(single, y, row=True) == {"predictions": [[1.5], [2.5]]}
    assert predict_response(single, y, row=False) == {"outputs": [[1.5], [2.5]]}
