"""Triton's statistics extension on ``shipyard serve``: tritonclient's ``get_inference_statistics``
over HTTP and gRPC counts the requests, samples, batches and failures a real package served."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.backend("tritonclient"), pytest.mark.backend("onnxruntime")]


@pytest.fixture(scope="module")
def server(digits_package):
    from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig

    options = ServeOptions(BatchConfig(max_batch_size=8, max_queue_delay_ms=1))
    srv = Server([digits_package], ServerConfig(http_port=0, grpc_port=0), options)
    with srv.running():
        yield srv


def send(client_module, client, batch):
    x = np.random.default_rng(batch).random((batch, 1, 8, 8), dtype=np.float32)
    tensor = client_module.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer("digits", [tensor])


def test_statistics_count_what_was_served_over_http_and_grpc(server):
    import tritonclient.grpc as tg
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    http = th.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    grpc = tg.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    for batch in (1, 2, 3):
        send(th, http, batch)
    send(tg, grpc, 4)
    bad = th.InferInput("image", [1, 1, 8, 7], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 1, 8, 7), np.float32))
    with pytest.raises(InferenceServerException):
        http.infer("digits", [bad])

    (stats,) = http.get_inference_statistics("digits")["model_stats"]
    assert (stats["name"], stats["version"]) == ("digits", "1")
    assert stats["inference_count"] == 10 and 1 <= stats["execution_count"] <= 4
    phases = stats["inference_stats"]
    assert (
        phases["success"]["count"] == 4
        and phases["fail"]["count"] == 1
        and phases["success"]["ns"] > 0
    )
    assert (
        phases["queue"]["count"] == 4
        and phases["compute_infer"]["count"] == 4
        and phases["compute_infer"]["ns"] > 0
    )
    assert sum(b["batch_size"] * b["compute_infer"]["count"] for b in stats["batch_stats"]) == 10
    assert stats["last_inference"] > 0

    answer = grpc.get_inference_statistics("digits", as_json=True)["model_stats"][0]
    assert (
        int(answer["inference_count"]) == 10
        and int(answer["inference_stats"]["fail"]["count"]) == 1
    )
    assert [s["name"] for s in http.get_inference_statistics()["model_stats"]] == ["digits"]


def test_statistics_of_unknown_models_are_not_found(server):
    import grpc
    import tritonclient.grpc as tg
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="not served"):
        th.InferenceServerClient(f"127.0.0.1:{server.http_port}").get_inference_statistics("nope")
    with pytest.raises(InferenceServerException) as info:
        tg.InferenceServerClient(f"127.0.0.1:{server.grpc_port}").get_inference_statistics(
            "digits", "9"
        )
    assert info.value.status() == str(grpc.StatusCode.NOT_FOUND)


def test_a_batch_reports_triton_s_three_compute_phases():
    """Joining inputs, running the model and splitting outputs are timed apart, per request and
    per batch size, as Triton reports them; a lone request is neither joined nor split."""
    import time

    from shipyard.batching import run_batch
    from shipyard.serve.stats import ModelStats

    def slow_model(inputs):
        time.sleep(0.02)
        return {"y": inputs["x"] * 2}

    rows = [{"x": np.ones((1, 256), np.float32)}, {"x": np.ones((2, 256), np.float32)}]
    started = time.perf_counter()
    outcome = run_batch(slow_model, rows, [1, 2])
    outcome.seconds = time.perf_counter() - started
    assert outcome.input_s > 0 and outcome.output_s > 0 and outcome.infer_s >= 0.02
    stats = ModelStats()
    stats.observe_batch([0.001, 0.002], outcome, 3)
    lone = run_batch(slow_model, rows[:1], [1])
    lone.seconds = 0.021
    stats.observe_batch([0.001], lone, 1)
    entry = stats.as_json("m", "1")
    phases = entry["inference_stats"]
    compute = ("compute_input", "compute_infer", "compute_output")
    assert all(phases[p]["count"] == 3 for p in compute)  # once per request
    assert phases["compute_input"]["ns"] > 0 and phases["compute_output"]["ns"] > 0
    by_size = {b["batch_size"]: b for b in entry["batch_stats"]}
    assert by_size[3]["compute_input"]["ns"] > 0 and by_size[3]["compute_infer"]["ns"] >= 2e7
    assert by_size[1]["compute_input"]["ns"] == 0 and by_size[1]["compute_infer"]["count"] == 1


def test_shared_statistics_add_up_the_workers_and_survive_a_restart(tmp_path):
    """Each serving process counts in its own file; any of them reads the sum, with the latest
    last_inference; a worker started again on its slot counts on from what its predecessor left."""
    from types import SimpleNamespace

    from shipyard.serve.stats import SharedStats, StatsRegistry

    timing = SimpleNamespace(input_s=0.001, infer_s=0.004, output_s=0.001)
    first = StatsRegistry(SharedStats(tmp_path, 0), max_batch=8)
    second = StatsRegistry(SharedStats(tmp_path, 1), max_batch=8)
    first.for_model("m").observe_batch([0.001] * 3, timing, 5)
    first.for_model("m").observe_request(0.01, True)
    second.for_model("m").observe_batch([0.002] * 2, timing, 2)
    second.for_model("m").observe_request(0.02, False)
    second.for_model("other").observe_request(0.02, True)
    for registry in (first, second):
        entry = registry.totals("m").as_json("m", "1")
        assert entry["inference_count"] == 7 and entry["execution_count"] == 2
        assert entry["inference_stats"]["queue"]["count"] == 5
        assert entry["inference_stats"]["success"] == {"count": 1, "ns": 10_000_000}
        assert entry["inference_stats"]["fail"] == {"count": 1, "ns": 20_000_000}
        assert [b["batch_size"] for b in entry["batch_stats"]] == [2, 5]
        assert entry["last_inference"] == max(
            int(r.for_model("m").values[2]) for r in (first, second)
        )
    restarted = StatsRegistry(SharedStats(tmp_path, 0), max_batch=8)
    restarted.for_model("m").observe_request(0.01, True)
    assert restarted.totals("m").as_json("m", "1")["inference_stats"]["success"]["count"] == 2
    assert restarted.totals("m").inference_count == 7
