"""``--instances auto``: the instances × threads of a served model are measured on this machine,
with real packages, and the server and the Triton export use what was measured."""

from __future__ import annotations

import pytest

import shipyard
from shipyard.serve.layout import (
    MARGIN,
    Layout,
    LayoutTiming,
    candidate_layouts,
    choose_layout,
    measured_instances,
)


def test_layouts_split_the_cores_evenly_or_keep_the_given_threads():
    assert candidate_layouts(2, None, 4) == [Layout(1, 2), Layout(2, 1)]
    assert candidate_layouts(8, None, 4) == [Layout(1, 8), Layout(2, 4), Layout(4, 2)]
    assert candidate_layouts(8, None, 1) == [Layout(1, 8)]
    assert candidate_layouts(1, None, 4) == [Layout(1, 1)]
    assert candidate_layouts(4, 2, 4) == [Layout(1, 2), Layout(2, 2)]
    assert candidate_layouts(2, 4, 4) == [Layout(1, 4)]


def test_more_instances_must_beat_fewer_by_the_margin():
    one, two = Layout(1, 2), Layout(2, 1)
    close = 100 * (1 + MARGIN / 2)
    assert choose_layout([LayoutTiming(two, close, 8), LayoutTiming(one, 100, 16)]).layout == one
    clear = 100 * (1 + 2 * MARGIN)
    choice = choose_layout([LayoutTiming(one, 100, 16), LayoutTiming(two, clear, 8)])
    assert choice.layout == two
    assert "1×2: 100" in choice.reason and "2×1: 110" in choice.reason
    assert "16 in flight" in choice.reason
    assert choose_layout([LayoutTiming(one, 300, 16), LayoutTiming(two, 200, 8)]).layout == one


def test_the_measured_layout_is_one_that_fits_and_its_instances_answer(digits_package):
    from shipyard.machine import usable_cores

    opened = []

    def open_instance(threads):
        opened.append(shipyard.load(digits_package, threads))
        return opened[-1]

    choice, instances = measured_instances(digits_package, open_instance, None, 32)
    layouts = candidate_layouts(usable_cores(), None, 4)
    assert choice.layout in layouts
    assert len(instances) == choice.layout.instances
    assert {i.threads for i in instances} == {choice.layout.threads}
    assert len(opened) == sum(layout.instances for layout in layouts)
    if len(layouts) > 1:
        assert [t.layout for t in choice.timings] == layouts
        assert all(t.samples_per_s > 0 for t in choice.timings)
        assert [t.batch * t.layout.instances for t in choice.timings] == [16] * len(layouts)
    x = instances[0].signature.inputs[0]
    import numpy as np

    image = np.zeros((1, *x.shape[1:]), dtype=np.float32)
    for instance in instances:
        assert instance.run({x.name: image})["logits"].shape == (1, 10)


@pytest.mark.backend("tritonclient")
def test_the_server_reports_the_layout_it_measured(digits_package):
    import tritonclient.http as httpclient

    from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig

    server = Server(
        [digits_package],
        ServerConfig(http_port=0, grpc_port=None),
        ServeOptions(BatchConfig(instances=None)),
    )
    model = server.state.repository.get("digits")
    with server.running():
        config = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}").get_model_config(
            "digits"
        )
    layout = model.layout.layout
    assert [g["count"] for g in config["instance_group"]] == [layout.instances]
    assert config["parameters"]["threads"]["string_value"] == str(layout.threads)
    assert len(model.predictors) == layout.instances


def test_the_triton_export_writes_the_measured_layout(digits_package, tmp_path):
    from shipyard.export.triton import TritonOptions, export_triton, measured_options, parse_config

    options, choice = measured_options(digits_package, TritonOptions(instances=None))
    assert (options.instances, options.threads) == (choice.layout.instances, choice.layout.threads)
    model = export_triton(digits_package, tmp_path / "repo", options)
    config = parse_config((model / "config.pbtxt").read_text())
    assert config.instance_group[0].count == choice.layout.instances
    threads = {key: value.string_value for key, value in config.parameters.items()}
    assert threads.get("intra_op_thread_count") == str(choice.layout.threads)


@pytest.mark.backend("onnxruntime")
def test_served_onnxruntime_sessions_do_not_spin_wait_and_answer_the_same(digits_package):
    import numpy as np

    from shipyard.serve import BatchConfig, ServeOptions
    from shipyard.serve.metrics import Metrics
    from shipyard.serve.repository import load_model

    def allow_spinning(predictor) -> str:
        options = predictor.session._session.get_session_options()
        try:
            return options.get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:  # not set: ONNX Runtime's default, which spins
            return "default"

    served = load_model(digits_package, ServeOptions(BatchConfig(instances=2)), Metrics())
    alone = shipyard.load(digits_package)
    assert [allow_spinning(p) for p in served.predictors] == ["0", "0"]
    assert allow_spinning(alone) != "0"
    x = alone.signature.inputs[0]
    images = np.random.default_rng(5).random((3, *x.shape[1:]), dtype=np.float32)
    np.testing.assert_allclose(
        served.predictors[0].run({x.name: images})["logits"],
        alone.run({x.name: images})["logits"],
        rtol=1e-5,
        atol=1e-5,
    )


def test_layouts_are_timed_only_while_all_their_instances_fit():
    from shipyard.serve.layout import affordable

    layouts = [Layout(1, 8), Layout(2, 4), Layout(4, 2)]
    assert affordable(layouts, 7) == layouts
    assert affordable(layouts, 3) == layouts[:2]
    assert affordable(layouts, 1) == layouts[:1]


def test_a_model_that_cannot_be_timed_keeps_the_first_layout(tmp_path):
    from shipyard.backends.fake import write_fake_package
    from shipyard.serve.layout import measure_layout

    folder = write_fake_package(tmp_path / "fake", "fake")

    class FailsUnderLoad:
        def __init__(self, threads):
            self.inner = shipyard.load(folder, threads)
            self.signature, self.calls, self.closed = self.inner.signature, 0, False

        def run(self, inputs):
            self.calls += 1
            if self.calls > 2:  # the warm-up passes, the timed runs fail
                raise RuntimeError("out of memory")
            return self.inner.run(inputs)

        def close(self):
            self.closed = True

    opened = []

    def open_instance(threads):
        opened.append(FailsUnderLoad(threads))
        return opened[-1]

    choice, instances = measure_layout(open_instance, [Layout(1, 2), Layout(2, 1)], lambda _: 4)
    assert choice.layout == Layout(1, 2) and "out of memory" in choice.reason
    assert instances == opened[:1] and [i.closed for i in opened] == [False, True, True]


def test_a_gpu_package_is_served_by_one_instance_without_timing(tmp_path):
    import json

    from shipyard.backends.fake import write_fake_package
    from shipyard.serve.layout import runs_on_gpu

    folder = write_fake_package(tmp_path / "fake", "fake")
    assert not runs_on_gpu(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    gpu = tmp_path / "gpu"
    gpu.mkdir()
    (gpu / "manifest.json").write_text(json.dumps({**manifest, "backend": "tensorrt"}))
    assert runs_on_gpu(gpu)
    opened = []
    choice, instances = measured_instances(
        gpu, lambda threads: opened.append(shipyard.load(folder, threads)) or opened[-1], None, 8
    )
    assert choice.layout.instances == 1 and instances == opened and "GPU" in choice.reason
