"""TensorFlow Serving clients against a real ``shipyard serve`` on 127.0.0.1: plain REST (urllib)
and
``tensorflow-serving-api``'s gRPC stubs, on an ONNX Runtime tensor package, a MiniLM text package
and
a JPEG-in classifier package, each answer compared with ``shipyard.load(...).run``."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import textwrap
import urllib.request

import numpy as np
import pytest
from serve_process import start_serve

import shipyard
from shipyard.backends.fake import write_fake_package

pytestmark = pytest.mark.backend("onnxruntime")

CLASSIFIER = textwrap.dedent("""
    import torch
    from torch import nn

    def make():
        torch.manual_seed(5)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                              nn.Conv2d(8, 16, 3, stride=2),
                              nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 6))
        with torch.no_grad():
            model[-1].weight.mul_(20)   # spread the logits so the top 3 is not a near tie
        return model.eval()
""")
LABELS = ["ship", "harbour", "crane", "dock", "tug", "buoy"]


@pytest.fixture(scope="module")
def packages(digits_package, tmp_path_factory):
    root = tmp_path_factory.mktemp("tfs_pkgs")
    return {
        "digits": digits_package,
        "words": write_fake_package(root / "words", "words", text=True),
    }


@pytest.fixture(scope="module")
def server(packages):
    from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig

    options = ServeOptions(
        BatchConfig(max_batch_size=8, max_queue_delay_ms=5), max_request_bytes=1 << 20
    )
    srv = Server(list(packages.values()), ServerConfig(http_port=0, grpc_port=0), options)
    with srv.running():
        yield srv


@pytest.fixture(scope="module")
def digits(packages):
    return shipyard.load(packages["digits"])


def rest(server, path, body=None, raw: bytes | None = None):
    """A plain HTTP call as any REST client makes it; returns (status, JSON body)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        try:
            conn.request(
                "GET" if data is None else "POST", path, data, {"Content-Type": "application/json"}
            )
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) before reading all of an oversized body
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def digits_batch(n=3, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


def test_rest_row_and_columnar_predict_give_the_package_outputs(server, digits):
    x = digits_batch()
    expected = digits.run({"image": x})["logits"]
    for path in ("/v1/models/digits:predict", "/v1/models/digits/versions/1:predict"):
        for body in (
            {"instances": x.tolist()},
            {"instances": [{"image": s} for s in x.tolist()]},
            {"signature_name": "serving_default", "instances": x.tolist()},
        ):
            status, answer = rest(server, path, body)
            assert status == 200, answer
            np.testing.assert_array_equal(np.asarray(answer["predictions"], np.float32), expected)
        for body in ({"inputs": x.tolist()}, {"inputs": {"image": x.tolist()}}):
            status, answer = rest(server, path, body)
            assert status == 200, answer
            np.testing.assert_array_equal(np.asarray(answer["outputs"], np.float32), expected)


def test_rest_status_and_metadata(server):
    available = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert rest(server, "/v1/models/digits") == (200, available)
    assert rest(server, "/v1/models/digits/versions/1") == (200, available)
    status, meta = rest(server, "/v1/models/digits/versions/1/metadata")
    assert status == 200 and meta["model_spec"] == {
        "name": "digits",
        "version": "1",
        "signature_name": "",
    }
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    image = signature["inputs"]["image"]
    assert image["dtype"] == "DT_FLOAT" and [d["size"] for d in image["tensor_shape"]["dim"]] == [
        "-1",
        "1",
        "8",
        "8",
    ]
    assert list(signature["outputs"]) == ["logits"]
    assert rest(server, "/v1/models/digits/metadata") == (200, meta)
    assert (
        rest(server, "/v1/models/words/metadata")[1]["metadata"]["signature_def"]["signature_def"][
            "serving_default"
        ]["inputs"]["text"]["dtype"]
        == "DT_STRING"
    )


@pytest.mark.parametrize(
    "path, body, status, fragment",
    [
        ("/v1/models/nope:predict", {"instances": [1]}, 404, "'nope' is not served"),
        ("/v1/models/digits/versions/7:predict", {"instances": [1]}, 404, "no version '7'"),
        ("/v1/models/nope", None, 404, "'nope' is not served"),
        ("/v1/models/digits/versions/7/metadata", None, 404, "no version '7'"),
        ("/v1/models/digits:classify", {"instances": [1]}, 400, "expected ':predict'"),
        ("/v1/models/digits/labels/stable", None, 404, "version labels are not served"),
        (
            "/v1/models/digits/labels/stable:predict",
            {"instances": [1]},
            404,
            "is not a TensorFlow Serving route",
        ),
        (
            "/v1/models/digits:predict",
            {"instances": [[1, 2]]},
            400,
            "input 'image' has shape [1, 2]",
        ),
        ("/v1/models/digits:predict", {"inputs": {"pixels": [1]}}, 400, "'pixels' is not an input"),
        (
            "/v1/models/digits:predict",
            {"instances": [1], "signature_name": "other"},
            400,
            "signature_name 'other'",
        ),
        ("/v1/models/digits:predict", {"instances": [[[[0.0] * 8] * 8]] * 9}, 400, "batch size 9"),
        ("/v1/models/words:predict", {"instances": [{"b64": "%%%"}]}, 400, "not base64"),
    ],
)
def test_rest_errors_are_tf_serving_error_bodies(server, path, body, status, fragment):
    got, answer = rest(server, path, body)
    assert got == status and list(answer) == ["error"] and fragment in answer["error"], answer


def test_rest_refuses_oversized_and_malformed_bodies_and_keeps_serving(server, digits):
    status, answer = rest(server, "/v1/models/digits:predict", raw=b"{" + b" " * (2 << 20) + b"}")
    assert status == 413 and "expected at most" in answer["error"]
    status, answer = rest(server, "/v1/models/digits:predict", raw=b'{"instances": [')
    assert status == 400 and "malformed" in answer["error"]
    x = digits_batch(1, seed=4)
    status, answer = rest(server, "/v1/models/digits:predict", {"instances": x.tolist()})
    np.testing.assert_array_equal(
        np.asarray(answer["predictions"], np.float32), digits.run({"image": x})["logits"]
    )


def test_rest_requests_share_the_batcher_and_metrics(server):
    from concurrent.futures import ThreadPoolExecutor

    x = digits_batch(1, seed=9).tolist()
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: rest(server, "/v1/models/digits:predict", {"instances": x}), range(8)
            )
        )
    assert {status for status, _ in answers} == {200}
    with urllib.request.urlopen(
        f"http://127.0.0.1:{server.http_port}/metrics", timeout=10
    ) as reply:
        metrics = reply.read().decode()
    line = next(
        li
        for li in metrics.splitlines()
        if li.startswith('shipyard_requests_total{model="digits",protocol="tfserving_http"}')
    )
    assert float(line.split()[-1]) >= 8


# --- gRPC: tensorflow-serving-api's own stubs
# ------------------------------------------------------


@pytest.fixture(scope="module")
def tfs():
    from shipyard.serve.tfserving_protos import ProtosUnavailable, load_protos

    try:
        return load_protos()  # as the server loads them: without importing TensorFlow's runtime
    except ProtosUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def stubs(server, tfs):
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield (
        tfs.prediction_grpc.PredictionServiceStub(channel),
        tfs.model_service_grpc.ModelServiceStub(channel),
    )
    channel.close()


def tensor_proto(tfs, array: np.ndarray, dtype: str, raw: bool = True):
    proto = tfs.tensor.TensorProto(dtype=tfs.types.DataType.Value(dtype))
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.dtype == object:
        proto.string_val.extend(array.reshape(-1).tolist())
    elif raw:
        proto.tensor_content = array.tobytes()
    else:
        proto.float_val.extend(array.reshape(-1).tolist())
    return proto


def from_proto(proto) -> np.ndarray:
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.string_val:
        return np.array(list(proto.string_val), dtype=object).reshape(shape)
    assert proto.dtype == 1  # DT_FLOAT
    return np.frombuffer(proto.tensor_content, dtype="<f4").reshape(shape)


def predict_request(tfs, model, inputs: dict, version: int | None = None, signature: str = ""):
    request = tfs.predict.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    return request


@pytest.mark.backend("tensorflow_serving")
@pytest.mark.parametrize("raw", [True, False], ids=["tensor_content", "float_val"])
def test_grpc_predict_gives_the_package_outputs(tfs, stubs, digits, raw):
    predict, _ = stubs
    x = digits_batch(4, seed=2)
    reply = predict.Predict(
        predict_request(
            tfs, "digits", {"image": tensor_proto(tfs, x, "DT_FLOAT", raw)}, 1, "serving_default"
        ),
        timeout=30,
    )
    np.testing.assert_array_equal(
        from_proto(reply.outputs["logits"]), digits.run({"image": x})["logits"]
    )
    assert (reply.model_spec.name, reply.model_spec.version.value) == ("digits", 1)
    assert reply.model_spec.signature_name == "serving_default"


@pytest.mark.backend("tensorflow_serving")
def test_grpc_metadata_and_status(tfs, stubs):
    predict, models = stubs
    request = tfs.metadata.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "digits"
    reply = predict.GetModelMetadata(request, timeout=30)
    signatures = tfs.metadata.SignatureDefMap()
    assert reply.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    image = signature.inputs["image"]
    assert image.dtype == tfs.types.DT_FLOAT and [d.size for d in image.tensor_shape.dim] == [
        -1,
        1,
        8,
        8,
    ]
    assert list(signature.outputs) == ["logits"] and reply.model_spec.version.value == 1
    status_request = tfs.status.GetModelStatusRequest()
    status_request.model_spec.name = "digits"
    versions = models.GetModelStatus(status_request, timeout=30).model_version_status
    assert [(v.version, v.state, v.status.error_code) for v in versions] == [
        (1, tfs.status.ModelVersionStatus.AVAILABLE, 0)
    ]


@pytest.mark.backend("tensorflow_serving")
def test_grpc_errors_carry_codes_and_say_what_was_expected(tfs, stubs):
    import grpc

    predict, _ = stubs
    x = digits_batch(2)
    cases = [
        (
            predict_request(tfs, "nope", {"image": tensor_proto(tfs, x, "DT_FLOAT")}),
            "NOT_FOUND",
            "'nope' is not served",
        ),
        (
            predict_request(tfs, "digits", {"image": tensor_proto(tfs, x, "DT_FLOAT")}, 7),
            "NOT_FOUND",
            "no version '7'",
        ),
        (
            predict_request(
                tfs, "digits", {"image": tensor_proto(tfs, x.astype(np.float64), "DT_DOUBLE")}
            ),
            "INVALID_ARGUMENT",
            "dtype DT_DOUBLE; expected DT_FLOAT",
        ),
        (
            predict_request(tfs, "digits", {"image": tensor_proto(tfs, x[:, :, :4], "DT_FLOAT")}),
            "INVALID_ARGUMENT",
            "size 4 on axis 2",
        ),
        (
            predict_request(
                tfs, "digits", {"image": tensor_proto(tfs, x, "DT_FLOAT")}, signature="x"
            ),
            "INVALID_ARGUMENT",
            "signature_name 'x'",
        ),
        (
            predict_request(tfs, "digits", {"pixels": tensor_proto(tfs, x, "DT_FLOAT")}),
            "INVALID_ARGUMENT",
            "'pixels' is not an input",
        ),
    ]
    truncated = tensor_proto(tfs, x, "DT_FLOAT")
    truncated.tensor_content = truncated.tensor_content[:-4]
    cases.append(
        (
            predict_request(tfs, "digits", {"image": truncated}),
            "INVALID_ARGUMENT",
            "bytes of binary data",
        )
    )
    filtered = predict_request(tfs, "digits", {"image": tensor_proto(tfs, x, "DT_FLOAT")})
    filtered.output_filter.append("probabilities")
    cases.append((filtered, "INVALID_ARGUMENT", "['probabilities'] are not outputs"))
    for request, code, fragment in cases:
        with pytest.raises(grpc.RpcError) as caught:
            predict.Predict(request, timeout=30)
        assert (
            caught.value.code() == grpc.StatusCode[code] and fragment in caught.value.details()
        ), fragment
    bad_field = tfs.metadata.GetModelMetadataRequest(metadata_field=["tags"])
    bad_field.model_spec.name = "digits"
    with pytest.raises(grpc.RpcError, match="expected \\['signature_def'\\]"):
        predict.GetModelMetadata(bad_field, timeout=30)
    with pytest.raises(grpc.RpcError) as caught:
        predict.Classify(_classify_request(), timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _classify_request():
    # loaded with the service stubs, so this imports no TensorFlow
    from tensorflow_serving.apis import classification_pb2

    return classification_pb2.ClassificationRequest()


@pytest.mark.backend("tensorflow_serving")
def test_grpc_text_as_string_val(tfs, stubs, packages):
    predict, _ = stubs
    texts = np.array([b"hello world", "h\xe9llo".encode(), b"ship"], dtype=object)
    reply = predict.Predict(
        predict_request(tfs, "words", {"text": tensor_proto(tfs, texts, "DT_STRING")}), timeout=30
    )
    np.testing.assert_array_equal(
        from_proto(reply.outputs["y"]), shipyard.load(packages["words"]).run({"text": texts})["y"]
    )


@pytest.mark.slow
@pytest.mark.backend("tensorflow_serving")
def test_shipyard_serve_answers_tf_serving_clients_without_loading_tensorflow(tfs, packages):
    """``shipyard serve`` as a user starts it; its process never maps TensorFlow's runtime
    library."""

    served = start_serve([packages["words"]], "--no-access-log")
    proc, grpc_port = served.proc, served.grpc_port
    try:
        server = type("Ports", (), {"http_port": served.http_port, "grpc_port": grpc_port})()
        assert rest(server, "/v1/models/words:predict", {"instances": ["hello world"]}) == (
            200,
            {"predictions": [[5.0]]},
        )
        import grpc

        stub = tfs.prediction_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        )
        proto = tensor_proto(tfs, np.array([b"hello"], dtype=object), "DT_STRING")
        assert from_proto(
            stub.Predict(predict_request(tfs, "words", {"text": proto}), timeout=30).outputs["y"]
        ).tolist() == [[2.0]]
        with open(f"/proc/{proc.pid}/maps") as maps:
            assert "libtensorflow_framework" not in maps.read()
    finally:
        served.stop()
    output = served.output(60)[0]
    assert (
        "TensorFlow Serving API: REST /v1/models/{m}[:predict], gRPC PredictionService" in output
    ), output


@pytest.mark.slow
@pytest.mark.backend("tensorflow_serving")
def test_tensorflow_imported_after_the_bare_protos_shares_their_messages(tfs):
    script = textwrap.dedent("""
        import sys
        from shipyard.serve.tfserving_protos import load_protos
        protos = load_protos()
        assert "tensorflow" not in sys.modules
        import tensorflow as tf
        request = protos.predict.PredictRequest()
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.5, 2.5]]))
        print(tf.make_ndarray(request.inputs["x"]).tolist())
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "[[1.5, 2.5]]"


def test_without_tensorflow_serving_api_kserve_grpc_still_serves(packages, monkeypatch, caplog):
    import grpc
    import tritonclient.grpc as tg

    from shipyard.serve import Server, ServerConfig
    from shipyard.serve.tfserving_protos import load_protos

    load_protos.cache_clear()
    monkeypatch.setitem(
        sys.modules, "tensorflow_serving", None
    )  # as if tensorflow-serving-api were absent
    try:
        server = Server([packages["words"]], ServerConfig(http_port=0, grpc_port=0))
        with caplog.at_level("WARNING", logger="shipyard.serve"), server.running():
            client = tg.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
            tensor = tg.InferInput("text", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([b"hello"], dtype=object))
            assert client.infer("words", [tensor]).as_numpy("y").tolist() == [[2.0]]
            call = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}").unary_unary(
                "/tensorflow.serving.PredictionService/Predict"
            )
            with pytest.raises(grpc.RpcError) as caught:
                call(b"", timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert rest(server, "/v1/models/words:predict", {"instances": ["hello"]}) == (
                200,
                {"predictions": [[2.0]]},
            )
    finally:
        load_protos.cache_clear()
    assert "TensorFlow Serving gRPC API is off" in caplog.text and "pip install" in caplog.text


# --- real text and image packages
# --------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier_package(tmp_path_factory):
    pytest.importorskip("torchvision")
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build
    from shipyard.sources import InputHint

    root = tmp_path_factory.mktemp("tfs_classifier")
    (root / "classifier.py").write_text(CLASSIFIER)
    config = {
        "image": {"resize": 40, "crop": 32},
        "postprocess": {"kind": "classify", "top_k": 3, "labels": LABELS},
    }
    (root / "pre.json").write_text(json.dumps(config))
    result = build(
        BuildOptions.create(
            f"{root / 'classifier.py'}:make",
            input_hints=[InputHint("image", "float32", (3, 32, 32))],
            output_names=["logits"],
            backends=["onnxruntime"],
            preprocess=root / "pre.json",
            out=root / "package",
            threads=1,
            max_eval=16,
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    )
    assert result.package is not None, [c.why_failed for c in result.candidates]
    return result.package


@pytest.fixture(scope="module")
def real_server(minilm_package, classifier_package):
    from shipyard.serve import Server, ServerConfig

    srv = Server([minilm_package, classifier_package], ServerConfig(http_port=0, grpc_port=0))
    with srv.running():
        yield srv


def photos_as_jpeg() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    from shipyard.processing.decode import encode_jpeg

    return np.array(
        [encode_jpeg(p) for p in (skimage_data.chelsea(), skimage_data.coffee())], dtype=object
    )


@pytest.mark.slow
def test_text_package_over_rest_and_grpc(real_server, minilm_package):
    texts = ["Lighthouses guide sailors through fog.", "Der Hafen ist im Winter ruhig."]
    name = json.loads((minilm_package / "manifest.json").read_text())["name"]
    predictor = shipyard.load(minilm_package)
    (output,) = predictor.signature.output_names
    expected = predictor.run({"text": np.array([t.encode() for t in texts], dtype=object)})[output]
    body = {"instances": [texts[0], {"b64": base64.b64encode(texts[1].encode()).decode()}]}
    status, answer = rest(real_server, f"/v1/models/{name}:predict", body)
    assert status == 200, answer
    np.testing.assert_array_equal(np.asarray(answer["predictions"], np.float32), expected)
    status, answer = rest(real_server, f"/v1/models/{name}:predict", {"inputs": {"text": texts}})
    np.testing.assert_array_equal(np.asarray(answer["outputs"], np.float32), expected)
    from shipyard.serve.tfserving_protos import status

    if status()[0]:  # and over gRPC when tensorflow-serving-api is installed
        import grpc

        from shipyard.serve.tfserving_protos import load_protos

        tfs = load_protos()
        stub = tfs.prediction_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{real_server.grpc_port}")
        )
        proto = tensor_proto(tfs, np.array([t.encode() for t in texts], dtype=object), "DT_STRING")
        reply = stub.Predict(predict_request(tfs, name, {"text": proto}), timeout=60)
        np.testing.assert_array_equal(from_proto(reply.outputs[output]), expected)


@pytest.mark.slow
def test_image_package_takes_b64_jpegs_and_answers_named_outputs(real_server, classifier_package):
    images = photos_as_jpeg()
    predictor = shipyard.load(classifier_package)
    name = predictor.name
    expected = predictor.run({"image": images})
    body = {"instances": [{"b64": base64.b64encode(b).decode()} for b in images]}
    status, answer = rest(real_server, f"/v1/models/{name}:predict", body)
    assert status == 200, answer
    rows = answer["predictions"]
    assert [sorted(r) for r in rows] == [["indices", "labels", "scores"]] * len(images)
    for index, row in enumerate(rows):
        assert row["labels"] == [x.decode() for x in expected["labels"][index]]
        assert row["indices"] == expected["indices"][index].tolist()
        np.testing.assert_array_equal(
            np.asarray(row["scores"], np.float32), expected["scores"][index]
        )
    status, answer = rest(
        real_server, f"/v1/models/{name}:predict", {"instances": [{"b64": "bm90IGFuIGltYWdl"}]}
    )
    assert status == 400 and "decode" in answer["error"], answer
    status, meta = rest(real_server, f"/v1/models/{name}/metadata")
    outputs = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    assert {k: v["dtype"] for k, v in outputs.items()} == {
        "labels": "DT_STRING",
        "scores": "DT_FLOAT",
        "indices": "DT_INT64",
    }
