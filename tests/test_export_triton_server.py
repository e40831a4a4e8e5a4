"""``shipyard export triton`` loaded by a real Triton Inference Server (2.51, nvidia-pytriton's
``tritonserver`` with its Python backend) on 127.0.0.1, answered over HTTP and gRPC by tritonclient
with each package's own outputs: a tensor package, a text package (BYTES text in) and an image
package with pre/post-processing (JPEG bytes in, labels out)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import shipyard
from shipyard.cli.main import main

pytestmark = [
    pytest.mark.backend("tritonclient"),
    pytest.mark.backend("onnxruntime"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def triton_environment():
    from triton_server import triton_env

    env, why = triton_env()
    if env is None:
        pytest.skip(why)
    return env


@pytest.fixture(scope="module")
def image_package(tmp_path_factory):
    pytest.importorskip("torchvision")
    pytest.importorskip("skimage")
    from test_processing_package import CLASSIFIER, CONFIG

    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build
    from shipyard.sources import InputHint

    root = tmp_path_factory.mktemp("classifier")
    (root / "classifier.py").write_text(CLASSIFIER)
    (root / "pre.json").write_text(json.dumps(CONFIG))
    build(
        BuildOptions.create(
            f"{root / 'classifier.py'}:make",
            input_hints=[InputHint("image", "float32", (3, 64, 64))],
            output_names=["logits"],
            backends=["onnxruntime"],
            preprocess=root / "pre.json",
            out=root / "classifier",
            threads=1,
            max_eval=32,
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    )
    return root / "classifier"


BATCHING_ANYWAY = "dynamic_batching { max_queue_delay_microseconds: 200000 }\n"
"""What a repository exported where the package could not be loaded (and so not proven) holds."""


@pytest.fixture(scope="module")
def repository(tmp_path_factory, digits_package, minilm_package, image_package):
    from tiny_packages import linear_package

    repo = tmp_path_factory.mktemp("triton") / "repo"
    mixing = linear_package(tmp_path_factory.mktemp("mixing") / "mixing", "mixing", mixing=True)
    assert main(["export", "triton", str(mixing), "--out", str(repo), "--python-backend"]) == 0
    with (repo / "mixing" / "config.pbtxt").open("a") as config:
        config.write(BATCHING_ANYWAY)
    assert (
        main(
            [
                "export",
                "triton",
                str(digits_package),
                "--out",
                str(repo),
                "--python-backend",
                "--max-batch-size",
                "16",
                "--max-queue-delay-ms",
                "1",
            ]
        )
        == 0
    )
    for package in (
        minilm_package,
        image_package,
    ):  # no native backend runs these: Python backend by itself
        assert (
            main(["export", "triton", str(package), "--out", str(repo), "--max-batch-size", "8"])
            == 0
        )
    return repo


@pytest.fixture(scope="module")
def triton(triton_environment, repository, tmp_path_factory):
    from triton_server import running_triton

    with running_triton(
        triton_environment, repository, tmp_path_factory.mktemp("log") / "triton.log"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def predictors(digits_package, minilm_package, image_package):
    return {
        "digits": shipyard.load(digits_package),
        "minilm": shipyard.load(minilm_package),
        "classifier": shipyard.load(image_package),
    }


def clients(triton):
    import tritonclient.grpc as tg
    import tritonclient.http as th

    return [
        ("http", th, th.InferenceServerClient(triton.http_url)),
        ("grpc", tg, tg.InferenceServerClient(triton.grpc_url)),
    ]


def infer(module, client, model, name, array, datatype, binary=True):
    tensor = module.InferInput(name, list(array.shape), datatype)
    if module.__name__.endswith("http"):
        tensor.set_data_from_numpy(array, binary_data=binary)
    else:
        tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor])


def test_requests_triton_batches_get_their_own_answers_from_a_model_that_mixes_rows(triton):
    """The model adds the batch's sum to every row; Triton joins concurrent requests (the config
    says so), and ``model.py``, whose proof at load failed, runs each one alone."""
    from concurrent.futures import ThreadPoolExecutor

    import tritonclient.http as th

    xs = [np.full((1, 3), i, np.float32) for i in range(8)]

    def ask(x):
        client = th.InferenceServerClient(triton.http_url)
        return infer(th, client, "mixing", "x", x, "FP32").as_numpy("y")

    with ThreadPoolExecutor(len(xs)) as pool:
        answers = list(pool.map(ask, xs))
    for x, y in zip(xs, answers):
        np.testing.assert_allclose(y, 3 * x + 1)  # 2x + 1 + the sum of a batch of one
    stats = th.InferenceServerClient(triton.http_url).get_inference_statistics("mixing")
    (model,) = stats["model_stats"]
    assert model["execution_count"] < model["inference_count"]  # Triton did join requests


def test_every_exported_model_is_ready_on_triton(triton):
    for _, _, client in clients(triton):
        assert client.is_server_ready()
        for model in ("digits", "minilm", "classifier"):
            assert client.is_model_ready(model), model


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tensor_package_answers_with_its_own_outputs(triton, predictors, binary):
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    expected = predictors["digits"].run({"image": x})["logits"]
    for protocol, module, client in clients(triton):
        got = infer(module, client, "digits", "image", x, "FP32", binary).as_numpy("logits")
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=protocol)


def test_text_package_takes_bytes_text(triton, predictors):
    texts = np.array(
        [b"Lighthouses guide sailors through fog.", "Le caf\u00e9 \u00e9tait froid.".encode()],
        dtype=object,
    )
    expected = predictors["minilm"].run({"text": texts})
    (name,) = expected
    for protocol, module, client in clients(triton):
        got = infer(module, client, "minilm", "text", texts.reshape(-1, 1), "BYTES").as_numpy(name)
        np.testing.assert_allclose(got, expected[name], rtol=1e-4, atol=1e-5, err_msg=protocol)


def test_a_triton_client_works_unchanged_against_shipyard_serve(
    triton, minilm_package, image_package
):
    """Requests built from Triton's config (a text or an image per sample is shape [N, 1]) get the
    same answers from ``shipyard serve``."""
    import tritonclient.http as th
    from test_processing_package import jpegs

    from shipyard.serve import Server, ServerConfig

    texts = np.array(
        [[b"Lighthouses guide sailors through fog."], [b"The soup was too salty."]], dtype=object
    )
    ours = Server([minilm_package, image_package], ServerConfig(http_port=0, grpc_port=None))
    with ours.running():
        answers = [
            (
                infer(th, th.InferenceServerClient(url), "minilm", "text", texts, "BYTES"),
                infer(
                    th,
                    th.InferenceServerClient(url),
                    "classifier",
                    "image",
                    jpegs().reshape(-1, 1),
                    "BYTES",
                ),
            )
            for url in (triton.http_url, f"127.0.0.1:{ours.http_port}")
        ]
    (text_theirs, image_theirs), (text_mine, image_mine) = answers
    (name,) = [o["name"] for o in text_theirs.get_response()["outputs"]]
    np.testing.assert_allclose(
        text_mine.as_numpy(name), text_theirs.as_numpy(name), rtol=1e-4, atol=1e-5
    )
    assert (
        image_mine.as_numpy("labels").reshape(3, -1).tolist()
        == image_theirs.as_numpy("labels").reshape(3, -1).tolist()
    )


def test_image_package_takes_jpeg_and_returns_labels(triton, predictors):
    from test_processing_package import jpegs

    images = jpegs()
    expected = predictors["classifier"].run({"image": images})
    for protocol, module, client in clients(triton):
        reply = infer(module, client, "classifier", "image", images.reshape(-1, 1), "BYTES")
        assert reply.as_numpy("labels").tolist() == expected["labels"].tolist(), protocol
        np.testing.assert_array_equal(reply.as_numpy("indices"), expected["indices"])
        np.testing.assert_allclose(reply.as_numpy("scores"), expected["scores"], atol=1e-5)


def test_concurrent_requests_batched_by_triton_get_their_own_rows(triton, predictors):
    from concurrent.futures import ThreadPoolExecutor

    import tritonclient.http as th

    def one(seed):
        x = np.random.default_rng(seed).random((1 + seed % 3, 1, 8, 8), dtype=np.float32)
        client = th.InferenceServerClient(triton.http_url)
        return x, infer(th, client, "digits", "image", x, "FP32").as_numpy("logits")

    with ThreadPoolExecutor(8) as pool:
        for x, got in pool.map(one, range(24)):
            np.testing.assert_allclose(
                got, predictors["digits"].run({"image": x})["logits"], rtol=1e-5, atol=1e-5
            )


def test_bad_input_gets_an_error_and_triton_keeps_serving(triton):
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    client = th.InferenceServerClient(triton.http_url)
    with pytest.raises(InferenceServerException, match="decode"):
        infer(
            th, client, "classifier", "image", np.array([[b"not an image"]], dtype=object), "BYTES"
        )
    assert client.is_model_ready("classifier")


def test_triton_reads_the_config_we_exported(triton, repository):
    from shipyard.export.triton import parse_config

    for _, module, client in clients(triton):
        for model in ("digits", "minilm", "classifier"):
            ours = parse_config((repository / model / "config.pbtxt").read_text())
            served = (
                client.get_model_config(model)
                if module.__name__.endswith("http")
                else client.get_model_config(model, as_json=True)["config"]
            )
            assert served["name"] == ours.name and served["backend"] == ours.backend == "python"
            assert int(served["max_batch_size"]) == ours.max_batch_size
            assert [t["name"] for t in served["input"]] == [t.name for t in ours.input]
            assert [(t["name"], [int(d) for d in t["dims"]]) for t in served["output"]] == [
                (t.name, list(t.dims)) for t in ours.output
            ]
            delay = served["dynamic_batching"].get("max_queue_delay_microseconds", 0)
            assert int(delay) == ours.dynamic_batching.max_queue_delay_microseconds
            assert int(served["instance_group"][0]["count"]) == ours.instance_group[0].count


# tritonserver 2.51 aborts (SIGABRT) on this one rather than answering:
# benchmarks/triton_protocol.py
# records it; here it would take the shared server down for the other tests
KILLS_TRITON = {"huge shape"}


@pytest.fixture(scope="module")
def ours(digits_package):
    """``shipyard serve`` of the digits package, batching as the export does."""
    from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig

    server = Server(
        [digits_package],
        ServerConfig(http_port=0, grpc_port=0),
        ServeOptions(BatchConfig(max_batch_size=16), max_request_bytes=1 << 20),
    )
    with server.running():
        yield server


def test_bad_requests_get_the_answer_class_triton_gives(triton, ours):
    """Same corpus to both servers: where Triton answers 4xx (or 200) so do we, with a message;
    where Triton answers 5xx to a client's mistake, we answer 4xx."""
    from protocol_corpus import corpus, send

    cases = [c for c in corpus("image", (1, 8, 8), 16) if c.kind not in KILLS_TRITON]
    assert len(cases) == 24
    for case in cases:
        mine, theirs = send(ours.http_port, "digits", case), send(triton.http_port, "digits", case)
        if theirs.status == 200:
            assert mine.status == 200, (case.kind, mine)
        else:
            assert 400 <= mine.status < 500 and "expected" in mine.message, (
                case.kind,
                mine,
                theirs,
            )
            if 400 <= theirs.status < 500:
                assert mine.status // 100 == theirs.status // 100, (case.kind, mine, theirs)
    assert (
        cases[0].kind == "good request" and send(triton.http_port, "digits", cases[0]).status == 200
    )


def test_statistics_have_the_fields_triton_answers(triton, ours):
    """``get_inference_statistics`` reads the same fields from either server, over HTTP and gRPC."""
    import tritonclient.grpc as tg
    import tritonclient.http as th

    x = np.zeros((2, 1, 8, 8), np.float32)
    answers = {}
    for who, server in (("triton", triton), ("ours", ours)):
        client = th.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        infer(th, client, "digits", "image", x, "FP32")
        answers[who] = client.get_inference_statistics("digits")["model_stats"][0]
        grpc_answer = tg.InferenceServerClient(
            f"127.0.0.1:{server.grpc_port}"
        ).get_inference_statistics("digits", as_json=True)["model_stats"][0]
        assert int(grpc_answer["inference_count"]) >= 2, who
    theirs, mine = answers["triton"], answers["ours"]
    assert set(mine) == set(theirs)
    assert set(mine["inference_stats"]) == set(theirs["inference_stats"])
    assert set(mine["batch_stats"][0]) == set(theirs["batch_stats"][0])
    assert mine["inference_count"] >= 2 and mine["inference_stats"]["success"]["count"] >= 1
