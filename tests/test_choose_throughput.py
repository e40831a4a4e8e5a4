"""``--optimize-for throughput`` ranks candidates by what a batching server gets from them: a
candidate whose batch mixes samples (ONNX Runtime's dynamic INT8 on MiniLM, measured) is served
request by request, so it counts at its batch-1 rate, not its batched one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shipyard.bench import BenchConfig
from shipyard.dataset import Dataset
from shipyard.pipeline.choose import choose, time_candidates
from shipyard.pipeline.options import SearchOptions
from shipyard.records import Artifact, Candidate, Recipe, Signature, TensorSpec

pytestmark = pytest.mark.backend("onnxruntime")

SIGNATURE = Signature(
    (TensorSpec("x", "float32", ("batch", 4)),), (TensorSpec("y", "float32", ("batch", 4)),)
)


def _onnx_model(path: Path, mixes_samples: bool) -> Artifact:
    """``y = 2x`` (samples apart), or ``y = x - mean over the batch`` (each row depends on the
    others, as a dynamic quantiser's batch-wide activation scale makes it)."""
    import onnx
    from onnx import TensorProto, helper

    if mixes_samples:
        nodes = [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[0], keepdims=1),
            helper.make_node("Sub", ["x", "m"], ["y"]),
        ]
    else:
        two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
        nodes = [helper.make_node("Constant", [], ["c"], value=two)]
        nodes.append(helper.make_node("Mul", ["x", "c"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return Artifact(path, "onnx", SIGNATURE)


def test_a_candidate_whose_batches_mix_samples_is_ranked_at_its_batch_1_rate(tmp_path):
    from shipyard.backends import get_backend

    backend = get_backend("onnxruntime")
    sessions = {
        name: backend.load(_onnx_model(tmp_path / f"{name}.onnx", name == "mixes"), 1)
        for name in ("mixes", "apart")
    }
    candidates = [Candidate("onnxruntime", "fp32", Recipe(), name=n) for n in sessions]
    evaluation = Dataset({"x": np.random.default_rng(0).random((32, 4), dtype=np.float32)})
    quick = BenchConfig(rounds=1, block_seconds=0.02, max_block=3)
    search = SearchOptions(optimize_for="throughput", throughput_batch=8, bench=quick, threads=1)
    time_candidates(candidates, sessions, evaluation, search, batched_config=quick)
    mixes, apart = candidates
    assert mixes.timing.batches_apart is False and apart.timing.batches_apart is True
    assert mixes.timing.served_throughput == pytest.approx(1000 / mixes.timing.p50_ms)
    assert apart.timing.served_throughput == apart.timing.throughput

    # the mixing one measured 3× faster batched, but serves one sample per call: it loses
    mixes.timing = replace(mixes.timing, throughput=3 * apart.timing.throughput)
    for candidate in candidates:
        candidate.verification = _passing()
    assert mixes.timing.served_throughput < apart.timing.throughput
    assert choose(candidates, "throughput") is apart
    latency = SearchOptions(optimize_for="latency", bench=quick, threads=1)
    time_candidates(candidates, sessions, evaluation, latency, batched_config=quick)
    assert all(c.timing.batches_apart is None for c in candidates)  # not checked for latency


def _passing():
    from shipyard.records import Verification

    return Verification("cosine", 100.0, 100.0, 0.0, passed=True, samples=32)
