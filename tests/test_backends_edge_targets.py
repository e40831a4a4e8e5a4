"""``--target cpu|gpu|edge``: which backends and precisions a build tries by default."""

from __future__ import annotations

import pytest

from shipyard.backends import CPU_BACKENDS
from shipyard.backends.gpu import nvidia_gpus
from shipyard.errors import BackendUnavailable, UsageError
from shipyard.pipeline.targets import EDGE_BACKENDS, GPU_BACKENDS, resolve_target

no_gpu = pytest.mark.skipif(
    bool(nvidia_gpus()), reason="checks the behaviour without an NVIDIA GPU"
)


def test_cpu_keeps_the_defaults_and_explicit_choices_win():
    assert resolve_target("cpu", None, None) == (None, None)
    assert resolve_target("edge", ["onnxruntime"], ["fp32"]) == (["onnxruntime"], ["fp32"])
    with pytest.raises(UsageError, match="--target 'tpu': expected one of cpu, gpu, edge"):
        resolve_target("tpu", None, None)


def test_edge_tries_the_edge_runtimes_int8_first():
    backends, precisions = resolve_target("edge", None, None)
    assert backends == ["ncnn", "mnn", "tvm", "onnxruntime"] == list(EDGE_BACKENDS)
    assert precisions[0] == "int8" and precisions[-1] == "fp32"
    assert "ncnn" not in CPU_BACKENDS


@no_gpu
def test_gpu_says_what_it_would_do_and_why_it_cannot():
    with pytest.raises(BackendUnavailable) as caught:
        resolve_target("gpu", None, None)
    message = str(caught.value)
    assert "would build TensorRT engines" in message and "FP16" in message and "INT8" in message
    for name in GPU_BACKENDS:
        assert f"{name}: not available" in message
    assert "not yet verified on GPU hardware" in message


@no_gpu
def test_build_target_gpu_fails_fast_with_one_clear_sentence(capsys):
    from shipyard.cli.main import main

    assert main(["build", "example:digits", "--target", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target gpu would build TensorRT engines")
    assert "pip install onnxruntime-gpu" in err and "pip install tensorrt" in err
