"""A real server on 127.0.0.1 answered by tritonclient (HTTP JSON, HTTP binary, gRPC), and every
bad request answered with a 4xx naming what was wrong while the server keeps serving."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import shipyard
from shipyard.backends.fake import write_fake_package

pytestmark = pytest.mark.backend("tritonclient")


@pytest.fixture(scope="module")
def packages(digits_package, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_pkgs")
    return {
        "digits": digits_package,
        "fake": write_fake_package(root / "fake", "fake"),
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
def predictors(packages):
    return {name: shipyard.load(folder) for name, folder in packages.items()}


def http_client(server):
    import tritonclient.http as th

    return th.InferenceServerClient(f"127.0.0.1:{server.http_port}")


def grpc_client(server):
    import tritonclient.grpc as tg

    return tg.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")


def digits_batch(n=3, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_http_gets_the_package_outputs(server, predictors, binary):
    import tritonclient.http as th

    x = digits_batch()
    client = http_client(server)
    tensor = th.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    result = client.infer(
        "digits", [tensor], outputs=[th.InferRequestedOutput("logits", binary_data=binary)]
    )
    np.testing.assert_array_equal(
        result.as_numpy("logits"), predictors["digits"].run({"image": x})["logits"]
    )
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
    meta = client.get_model_metadata("digits")
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]


def test_tritonclient_grpc_gets_the_package_outputs(server, predictors):
    import tritonclient.grpc as tg

    x = digits_batch(5, seed=1)
    client = grpc_client(server)
    tensor = tg.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("digits", [tensor], model_version="1")
    np.testing.assert_array_equal(
        result.as_numpy("logits"), predictors["digits"].run({"image": x})["logits"]
    )
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
    meta = client.get_model_metadata("digits")
    assert meta.name == "digits" and list(meta.inputs[0].shape) == [-1, 1, 8, 8]
    assert client.get_server_metadata().name == "shipyard"


def test_tritonclient_http_gets_the_served_model_config(server, predictors):
    client = http_client(server)
    config = client.get_model_config("digits")
    assert (config["name"], config["backend"], config["platform"]) == (
        "digits",
        "shipyard",
        "shipyard_onnxruntime",
    )
    assert (
        config["max_batch_size"] == 8
        and config["dynamic_batching"]["max_queue_delay_microseconds"] == 5000
    )
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("image", "TYPE_FP32", [1, 8, 8])
    ]
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["output"]] == [
        ("logits", "TYPE_FP32", [10])
    ]
    assert [(g["count"], g["kind"]) for g in config["instance_group"]] == [(1, "KIND_CPU")]
    assert config["parameters"]["threads"] == {"string_value": str(predictors["digits"].threads)}
    assert client.get_model_config("digits", "1") == config
    text = client.get_model_config("words")["input"]
    assert [(t["name"], t["data_type"], t["dims"], t["reshape"]) for t in text] == [
        ("text", "TYPE_STRING", [1], {"shape": []})
    ]


def test_tritonclient_grpc_gets_the_served_model_config(server):
    from tritonclient.grpc import model_config_pb2 as mc

    client = grpc_client(server)
    config = client.get_model_config("digits", "1").config
    assert (config.name, config.backend, config.max_batch_size) == ("digits", "shipyard", 8)
    assert config.dynamic_batching.max_queue_delay_microseconds == 5000
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("image", mc.TYPE_FP32, [1, 8, 8])
    ]
    assert [(t.name, list(t.dims)) for t in config.output] == [("logits", [10])]
    assert [(g.count, g.kind) for g in config.instance_group] == [
        (1, mc.ModelInstanceGroup.KIND_CPU)
    ]
    assert client.get_model_config("words").config.input[0].data_type == mc.TYPE_STRING


def test_configs_of_unknown_models_and_versions_are_not_found(server):
    import grpc
    from tritonclient.utils import InferenceServerException

    for name, version, fragment in [
        ("nope", "", "'nope' is not served"),
        ("digits", "7", "no version '7'"),
    ]:
        with pytest.raises(InferenceServerException) as http_info:
            http_client(server).get_model_config(name, version)
        assert http_info.value.status() == "404" and fragment in http_info.value.message()
        with pytest.raises(InferenceServerException) as grpc_info:
            grpc_client(server).get_model_config(name, version)
        assert (
            grpc_info.value.status() == str(grpc.StatusCode.NOT_FOUND)
            and fragment in grpc_info.value.message()
        )


@pytest.mark.parametrize("protocol", ["json", "binary", "grpc"])
def test_text_packages_take_bytes_over_every_protocol(server, predictors, protocol):
    texts = np.array([b"hello world", b"ship yard yard", "héllo".encode()], dtype=object)
    if protocol == "grpc":
        import tritonclient.grpc as tg

        tensor = tg.InferInput("text", [3], "BYTES")
        tensor.set_data_from_numpy(texts)
        result = grpc_client(server).infer("words", [tensor])
    else:
        import tritonclient.http as th

        tensor = th.InferInput("text", [3], "BYTES")
        tensor.set_data_from_numpy(texts, binary_data=protocol == "binary")
        result = http_client(server).infer("words", [tensor])
    np.testing.assert_array_equal(
        result.as_numpy("y"), predictors["words"].run({"text": texts})["y"]
    )


def test_concurrent_clients_each_get_their_own_rows(server, predictors):
    import tritonclient.http as th

    def one(seed):
        x = digits_batch(1 + seed % 3, seed)
        tensor = th.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        return x, http_client(server).infer("digits", [tensor]).as_numpy("logits")

    with ThreadPoolExecutor(8) as pool:
        for x, got in pool.map(one, range(24)):
            np.testing.assert_allclose(
                got, predictors["digits"].run({"image": x})["logits"], rtol=1e-5, atol=1e-5
            )


def post(server, path, body, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, data, headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def fake_input(**overrides):
    return {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4], **overrides}


BAD_REQUESTS = {
    "malformed json": (b'{"inputs": [', {}, 400, "malformed"),
    "no inputs": ({"outputs": []}, {}, 400, "'inputs'"),
    "unknown input": ({"inputs": [fake_input(name="z")]}, {}, 400, "'z' is not an input"),
    "missing input": ({"inputs": []}, {}, 400, "missing"),
    "duplicate input": ({"inputs": [fake_input(), fake_input()]}, {}, 400, "twice"),
    "wrong datatype": ({"inputs": [fake_input(datatype="INT64")]}, {}, 400, "expected FP32"),
    "unknown datatype": ({"inputs": [fake_input(datatype="FLOAT")]}, {}, 400, "expected FP32"),
    "wrong rank": ({"inputs": [fake_input(shape=[4])]}, {}, 400, "expected 2"),
    "wrong fixed dim": (
        {"inputs": [fake_input(shape=[1, 3], data=[1, 2, 3])]},
        {},
        400,
        "expected 4",
    ),
    "negative dim": ({"inputs": [fake_input(shape=[-1, 4])]}, {}, 400, "non-negative"),
    "shape not ints": ({"inputs": [fake_input(shape=["1", 4])]}, {}, 400, "list of integers"),
    "element count": ({"inputs": [fake_input(data=[1, 2, 3])]}, {}, 400, "expected 4"),
    "non-numeric": ({"inputs": [fake_input(data=[1, "a", 3, 4])]}, {}, 400, "non-numeric"),
    "ragged data": ({"inputs": [fake_input(data=[[1, 2], [3]])]}, {}, 400, "ragged"),
    "data not a list": ({"inputs": [fake_input(data="1234")]}, {}, 400, "JSON list"),
    "unknown output": (
        {"inputs": [fake_input()], "outputs": [{"name": "nope"}]},
        {},
        400,
        "not outputs",
    ),
    "batch over max": (
        {"inputs": [fake_input(shape=[9, 4], data=[0] * 36)]},
        {},
        400,
        "max_batch_size",
    ),
    "zero batch": ({"inputs": [fake_input(shape=[0, 4], data=[])]}, {}, 400, "expected 1 to 8"),
    "huge shape": ({"inputs": [fake_input(shape=[10**12, 4])]}, {}, 413, "at most"),
    "binary size past body": (
        json.dumps(
            {"inputs": [fake_input(data=None, parameters={"binary_data_size": 16})]}
        ).encode()
        + b"\0" * 8,
        "header",
        400,
        "binary_data_size",
    ),
    "binary size short of body": (
        json.dumps(
            {"inputs": [fake_input(data=None, parameters={"binary_data_size": 16})]}
        ).encode()
        + b"\0" * 20,
        "header",
        400,
        "expected 16",
    ),
    "binary wrong byte count": (
        json.dumps(
            {"inputs": [fake_input(data=None, parameters={"binary_data_size": 12})]}
        ).encode()
        + b"\0" * 12,
        "header",
        400,
        "expected 16",
    ),
    "bad header length": (
        {"inputs": [fake_input()]},
        {"Inference-Header-Content-Length": "99999"},
        400,
        "Inference-Header-Content-Length",
    ),
    "unknown encoding": (
        {"inputs": [fake_input()]},
        {"Content-Encoding": "br"},
        400,
        "content-encoding",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_http_requests_get_a_4xx_naming_the_problem(server, case):
    body, headers, status, fragment = BAD_REQUESTS[case]
    if headers == "header":
        headers = {"Inference-Header-Content-Length": str(body.index(b"}]}") + 3)}
    got, answer = post(server, "/v2/models/fake/infer", body, headers)
    assert got == status, answer
    message = json.loads(answer)["error"]
    assert fragment in message, message
    assert "expected" in message, message
    assert post(server, "/v2/models/fake/infer", {"inputs": [fake_input()]})[0] == 200


def test_unknown_models_and_versions_are_404(server):
    status, answer = post(server, "/v2/models/nope/infer", {"inputs": [fake_input()]})
    assert status == 404 and "'nope' is not served" in json.loads(answer)["error"]
    status, answer = post(server, "/v2/models/fake/versions/7/infer", {"inputs": [fake_input()]})
    assert status == 404 and "no version '7'" in json.loads(answer)["error"]
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("GET", "/v2/models/nope")
    assert conn.getresponse().status == 404


def test_bodies_over_the_limit_are_413(server):
    status, answer = post(server, "/v2/models/fake/infer", b"x" * (2 << 20))
    assert status == 413 and "at most" in json.loads(answer)["error"]


def test_bad_grpc_requests_get_the_matching_status(server):
    import grpc
    import tritonclient.grpc as tg
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)

    def call(inputs, raw=(), outputs=(), model="fake"):
        request = pb.ModelInferRequest(
            model_name=model,
            inputs=inputs,
            raw_input_contents=list(raw),
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=o) for o in outputs],
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=10)
        return info.value.code(), info.value.details()

    tensor = pb.ModelInferRequest.InferInputTensor
    ok = np.ones((1, 4), np.float32).tobytes()
    assert (
        call([tensor(name="z", datatype="FP32", shape=[1, 4])], [ok])[0]
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    code, details = call([tensor(name="x", datatype="INT32", shape=[1, 4])], [ok])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "expected FP32" in details
    code, details = call([tensor(name="x", datatype="FP32", shape=[1, 4])], [ok[:12]])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "expected 16" in details
    code, details = call([tensor(name="x", datatype="FP32", shape=[1, 4])], [ok], outputs=["nope"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not outputs" in details
    code, details = call([tensor(name="x", datatype="FP32", shape=[1, 4])], [ok], model="nope")
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = call([tensor(name="x", datatype="FP32", shape=[2**40, 4])], [ok])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    code, _ = call([tensor(name="x", datatype="FP32", shape=[1, 4])], [b"\0" * (2 << 20)])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    contents = pb.InferTensorContents(fp32_contents=[1, 2, 3, 4])
    answer = stub.ModelInfer(
        pb.ModelInferRequest(
            model_name="fake",
            inputs=[tensor(name="x", datatype="FP32", shape=[1, 4], contents=contents)],
        ),
        timeout=10,
    )
    assert np.frombuffer(answer.raw_output_contents[0], np.float32).tolist() == [10.0]
    assert tg.InferenceServerClient(f"127.0.0.1:{server.grpc_port}").is_server_live()
    channel.close()


def test_text_packages_take_the_shape_triton_config_describes(server, predictors):
    """``get_model_config`` says dims [1] + empty reshape for one text per sample: [N, 1] works as
    [N]."""
    import tritonclient.http as th

    texts = np.array([[b"hello world"], [b"yard"]], dtype=object)
    tensor = th.InferInput("text", [2, 1], "BYTES")
    tensor.set_data_from_numpy(texts)
    result = http_client(server).infer("words", [tensor])
    np.testing.assert_array_equal(
        result.as_numpy("y"), predictors["words"].run({"text": texts.ravel()})["y"]
    )
    bad = th.InferInput("text", [1, 2], "BYTES")
    bad.set_data_from_numpy(np.array([[b"a", b"b"]], dtype=object))
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="expected 1"):
        http_client(server).infer("words", [bad])
