"""One ``--time-budget`` for the whole build, and the progress display's estimate of time left."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_passed

from shipyard.bench import BenchConfig
from shipyard.deadline import Deadline, TimeBudgetSpent


def test_a_deadline_counts_down_and_stops_work_by_name():
    assert Deadline(None).remaining() == math.inf and not Deadline(None).spent()
    spent = Deadline(0.0)
    assert spent.spent() and spent.remaining() == 0.0
    with pytest.raises(TimeBudgetSpent, match="NNCF accuracy control stopped.*0 s"):
        spent.check("NNCF accuracy control")
    assert not Deadline(3600).spent() and 3590 < Deadline(3600).remaining() <= 3600


def test_optional_work_stops_early_enough_for_timing_and_packaging():
    from shipyard.pipeline.choose import PACKAGING_SECONDS, timing_reserve

    bench = BenchConfig(rounds=4, block_seconds=0.5)
    reserve = timing_reserve(bench, 12)
    assert reserve == 2 * 12 * 0.5 * 3 + PACKAGING_SECONDS  # 2 rounds + warm-up, twice, + package
    whole = Deadline(3600)
    search = whole.keeping(reserve)
    assert search.started == whole.started
    assert whole.remaining() - search.remaining() == pytest.approx(reserve, abs=0.1)
    nearly_over = Deadline(reserve + 1.0).keeping(reserve)
    assert not nearly_over.spent()
    assert Deadline(reserve - 1.0).keeping(reserve).spent()
    with pytest.raises(TimeBudgetSpent, match=f"less {reserve:.0f} s kept for timing"):
        Deadline(reserve - 1.0).keeping(reserve).check("the search")


def test_nncf_validation_stops_once_the_budget_is_spent():
    from shipyard.backends.openvino.accuracy_control import validation_fn

    reference = np.eye(3, dtype=np.float32)
    validate = validation_fn("agreement", reference, None, Deadline(0.0))
    with pytest.raises(TimeBudgetSpent):
        validate(None, [])


def test_timing_rounds_shrink_to_fit_what_is_left():
    from shipyard.pipeline.build import QuietReporter
    from shipyard.pipeline.choose import bench_within

    bench = BenchConfig(rounds=4, block_seconds=0.6)
    assert bench_within(bench, 10, Deadline(None), QuietReporter()).rounds == 4
    assert bench_within(bench, 10, Deadline(0.0), QuietReporter()).rounds == 2


def test_progress_text_estimates_time_left_from_the_pace_so_far():
    from shipyard.cli.console import _progress_text

    assert "about 30 s left" in _progress_text(10.0, 1, 4) and "1/4" in _progress_text(10.0, 1, 4)
    assert _progress_text(12.0, 4, 4) == "4/4 done in 12 s"
    assert _progress_text(5.0, 3, 0) == "3 done in 5 s"


def test_a_spent_budget_still_makes_fp32_and_skips_what_comes_later(small_cnn):
    from shipyard.pipeline.build import build
    from shipyard.pipeline.options import BuildOptions

    result = build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=small_cnn["weights"],
            data=small_cnn["data"],
            backends=["onnxruntime"],
            precisions=["fp32", "int8"],
            time_budget=0.0,
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    )
    assert_passed(result, ["onnxruntime/fp32", "onnxruntime/fp32+onnxslim", "onnxruntime/fp32+ort"])
    int8 = [c for c in result.candidates if c.precision == "int8"]
    assert len(int8) == 2  # nncf-qdq and static-qdq, neither made once the budget is spent
    for candidate in int8:
        assert candidate.verification is None
        assert candidate.error.startswith("not tried: the time budget of 0 s was spent")
    assert result.chosen is not None and result.chosen.precision == "fp32"


def test_throughput_timing_shrinks_once_the_budget_is_spent():
    from shipyard.pipeline.choose import batched_bench

    bench = BenchConfig(rounds=4, block_seconds=0.6)
    assert batched_bench(bench, Deadline(None)).rounds == 2
    spent = batched_bench(bench, Deadline(0.0))
    assert spent.rounds == 1 and spent.max_block == 3


def test_candidates_are_made_a_precision_at_a_time():
    from shipyard.pipeline.build import making_order
    from shipyard.records import Candidate, Recipe

    plans = [
        Candidate(b, p, Recipe())
        for b, p in [
            ("torch", "fp32"),
            ("onnxruntime", "fp32"),
            ("openvino", "fp32"),
            ("openvino", "bf16"),
            ("onnxruntime", "int8"),
            ("openvino", "int8"),
        ]
    ]
    made = [(c.backend, c.precision) for c in making_order(plans)]
    assert made == [
        ("torch", "fp32"),
        ("openvino", "bf16"),
        ("onnxruntime", "int8"),
        ("onnxruntime", "fp32"),
        ("openvino", "int8"),
        ("openvino", "fp32"),
    ]
