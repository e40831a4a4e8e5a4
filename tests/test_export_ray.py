"""The Ray Serve deployment of a package answers tritonclient on a local Ray instance."""

from __future__ import annotations

import runpy
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import shipyard
from shipyard.cli.main import main

pytestmark = [pytest.mark.backend("ray"), pytest.mark.backend("tritonclient")]


@pytest.fixture(scope="module")
def ray_serve(digits_package):
    import ray
    from ray import serve

    from shipyard.export.ray import RayOptions, build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        options = RayOptions(replicas=2, max_batch_size=8, max_queue_delay_ms=5, threads=1)
        serve.run(
            build_app(digits_package, options), name="digits", route_prefix="/v2/models/digits"
        )
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.mark.slow
def test_ray_deployment_answers_with_the_package_outputs(ray_serve, digits_package):
    import tritonclient.http as th

    predictor = shipyard.load(digits_package)

    def one(seed):
        x = np.random.default_rng(seed).random((1 + seed % 3, 1, 8, 8), dtype=np.float32)
        tensor = th.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=seed % 2 == 0)
        client = th.InferenceServerClient(f"127.0.0.1:{ray_serve}")
        return x, client.infer("digits", [tensor]).as_numpy("logits")

    with ThreadPoolExecutor(6) as pool:
        for x, got in pool.map(one, range(12)):
            np.testing.assert_allclose(
                got, predictor.run({"image": x})["logits"], rtol=1e-5, atol=1e-5
            )
    client = th.InferenceServerClient(f"127.0.0.1:{ray_serve}")
    assert client.get_model_metadata("digits")["inputs"][0]["shape"] == [-1, 1, 8, 8]


@pytest.mark.slow
def test_ray_deployment_answers_bad_requests_with_4xx(ray_serve):
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", ray_serve, timeout=30)
    body = {
        "inputs": [{"name": "image", "datatype": "INT64", "shape": [1, 1, 8, 8], "data": [0] * 64}]
    }
    conn.request("POST", "/v2/models/digits/infer", json.dumps(body).encode())
    response = conn.getresponse()
    assert response.status == 400 and "expected FP32" in json.loads(response.read())["error"]


def test_export_ray_writes_an_importable_app(digits_package, tmp_path):
    assert (
        main(
            [
                "export",
                "ray",
                str(digits_package),
                "--out",
                str(tmp_path / "app"),
                "--replicas",
                "2",
            ]
        )
        == 0
    )
    source = (tmp_path / "app" / "app.py").read_text()
    assert "build_app(" in source and '"replicas": 2' in source
    app = runpy.run_path(str(tmp_path / "app" / "app.py"))["app"]
    assert type(app).__name__ == "Application"
