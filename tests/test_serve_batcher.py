"""The dynamic batcher on the fake backend: joins along the batch axis, splits, protects."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

import shipyard
from shipyard.backends.fake import write_fake_package
from shipyard.serve.batcher import BatchConfig, Batcher
from shipyard.serve.errors import BadRequest, NotReady, Overloaded, RequestTimeout, ServeError
from shipyard.serve.metrics import Metrics


def make_batcher(tmp_path, config: BatchConfig, **fake) -> tuple[Batcher, list]:
    predictors = [
        shipyard.load(write_fake_package(tmp_path / f"p{i}", **fake))
        for i in range(config.instances)
    ]
    batcher = Batcher("fake", [p.run for p in predictors], config, Metrics().for_model("fake"))
    return batcher, predictors


def run(coro):
    return asyncio.run(coro)


async def start_with_a_waiting_request(batcher: Batcher, x: dict) -> asyncio.Future:
    """Start ``batcher``, run two requests together (traffic: company), then queue one that now
    waits for company (well inside the tests' delays of seconds); returns its future."""
    batcher.start()
    await asyncio.gather(batcher.submit(x, 1), batcher.submit(x, 1))
    first = asyncio.ensure_future(batcher.submit(x, 1))
    await asyncio.sleep(0.05)
    return first


def test_concurrent_requests_are_joined_and_split_per_request(tmp_path):
    batcher, (predictor,) = make_batcher(
        tmp_path, BatchConfig(max_batch_size=16, max_queue_delay_ms=50), delay_ms=20
    )
    feeds = [np.full((n, 4), i, np.float32) for i, n in enumerate([1, 3, 2, 1, 4, 1], start=1)]

    async def main():
        batcher.start()
        results = await asyncio.gather(*(batcher.submit({"x": f}, len(f)) for f in feeds))
        await batcher.stop()
        return results

    results = run(main())
    for feed, result in zip(feeds, results):
        np.testing.assert_array_equal(result["y"], feed.sum(axis=1, keepdims=True))
    assert predictor.session.calls[0] == sum(len(f) for f in feeds)  # one batch of all 12 samples


def test_batches_never_exceed_max_batch_size_and_mismatched_shapes_are_not_mixed(tmp_path):
    batcher, (predictor,) = make_batcher(
        tmp_path, BatchConfig(max_batch_size=4, max_queue_delay_ms=30), delay_ms=5
    )

    async def main():
        batcher.start()
        feeds = [{"x": np.ones((1, 4), np.float32)} for _ in range(9)]
        results = await asyncio.gather(*(batcher.submit(f, 1) for f in feeds))
        await batcher.stop()
        return results

    results = run(main())
    assert all(r["y"].tolist() == [[4.0]] for r in results)
    assert max(predictor.session.calls) <= 4 and sum(predictor.session.calls) == 9
    assert max(predictor.session.calls) > 1


def test_overloaded_queue_is_refused_and_timeouts_are_reported(tmp_path):
    batcher, _ = make_batcher(
        tmp_path, BatchConfig(max_batch_size=1, max_queue=2, timeout_s=0.15), delay_ms=100
    )

    async def main():
        batcher.start()
        tasks = [
            asyncio.ensure_future(batcher.submit({"x": np.ones((1, 4), np.float32)}, 1))
            for _ in range(4)
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.stop()
        return results

    results = run(main())
    kinds = [type(r) for r in results]
    assert Overloaded in kinds, kinds
    assert RequestTimeout in kinds, kinds
    assert "queued" in str(next(r for r in results if isinstance(r, Overloaded)))


def test_a_failing_request_fails_alone_and_the_batcher_keeps_serving(tmp_path):
    batcher, _ = make_batcher(
        tmp_path, BatchConfig(max_batch_size=8, max_queue_delay_ms=30), fail_on=7.0
    )

    async def main():
        batcher.start()
        good = [np.full((1, 4), 1, np.float32), np.full((2, 4), 2, np.float32)]
        bad = np.full((1, 4), 7, np.float32)
        results = await asyncio.gather(
            *(batcher.submit({"x": f}, len(f)) for f in [good[0], bad, good[1]]),
            return_exceptions=True,
        )
        after = await batcher.submit({"x": good[0]}, 1)
        await batcher.stop()
        return results, after

    (first, failed, second), after = run(main())
    assert first["y"].tolist() == [[4.0]] and second["y"].tolist() == [[8.0], [8.0]]
    assert type(failed) is ServeError and "fake failure" in str(failed)
    assert after["y"].tolist() == [[4.0]]


def test_data_errors_from_the_model_are_bad_requests(tmp_path):
    batcher, _ = make_batcher(tmp_path, BatchConfig(max_batch_size=4))

    async def main():
        batcher.start()
        try:
            return await batcher.submit({"x": np.ones((1, 3), np.float32)}, 1)
        finally:
            await batcher.stop()

    with pytest.raises(BadRequest, match="axis 1"):
        run(main())


def test_stop_finishes_queued_requests_then_refuses_new_ones(tmp_path):
    batcher, _ = make_batcher(tmp_path, BatchConfig(max_batch_size=1), delay_ms=30)

    async def main():
        batcher.start()
        tasks = [
            asyncio.ensure_future(batcher.submit({"x": np.ones((1, 4), np.float32)}, 1))
            for _ in range(3)
        ]
        await asyncio.sleep(0.01)
        await batcher.stop()
        done = await asyncio.gather(*tasks)
        with pytest.raises(NotReady):
            await batcher.submit({"x": np.ones((1, 4), np.float32)}, 1)
        return done

    assert [r["y"].tolist() for r in run(main())] == [[[4.0]]] * 3


def test_latency_target_shrinks_a_delay_that_would_miss_it(tmp_path):
    config = BatchConfig(
        max_batch_size=64, max_queue_delay_ms=40, latency_target_ms=20, lone_request_waits=True
    )
    batcher, _ = make_batcher(tmp_path, config, delay_ms=2)

    async def main():
        batcher.start()
        for _ in range(8):  # one request at a time: every batch waits the whole delay
            await batcher.submit({"x": np.ones((1, 4), np.float32)}, 1)
        await batcher.stop()

    run(main())
    assert batcher.delay_s <= 0.010, (
        batcher.delay_s
    )  # 40 ms → 20 → 10: the 2 ms model now fits in 20 ms


def test_instances_run_batches_in_parallel(tmp_path):
    batcher, predictors = make_batcher(
        tmp_path, BatchConfig(max_batch_size=1, instances=2), delay_ms=50
    )
    both_running = threading.Barrier(2, timeout=10)  # passes only when both instances run at once
    for predictor in predictors:
        run_one = predictor.session._run_impl

        def run_together(inputs, run_one=run_one):
            both_running.wait()
            return run_one(inputs)

        predictor.session._run_impl = run_together

    async def main():
        batcher.start()
        await asyncio.gather(
            *(batcher.submit({"x": np.ones((1, 4), np.float32)}, 1) for _ in range(4))
        )
        await batcher.stop()

    run(main())
    assert all(len(p.session.calls) == 2 for p in predictors)


def test_requests_taken_from_the_middle_of_the_queue_keep_the_batcher_alive(tmp_path):
    # While the instance is busy, sizes 3, 2, 2, 1 queue up; the next batch is 3 + the 1 behind two
    # 2s.
    batcher, (predictor,) = make_batcher(
        tmp_path, BatchConfig(max_batch_size=4, max_queue_delay_ms=0, timeout_s=5), delay_ms=50
    )

    async def main():
        batcher.start()
        feeds = [np.full((n, 4), n, np.float32) for n in (1, 3, 2, 2, 1)]
        tasks = []
        for feed in feeds:
            tasks.append(asyncio.ensure_future(batcher.submit({"x": feed}, len(feed))))
            await asyncio.sleep(0.005)
        results = await asyncio.gather(*tasks)
        await batcher.stop()
        return feeds, results

    feeds, results = run(main())
    for feed, result in zip(feeds, results):
        np.testing.assert_array_equal(result["y"], feed.sum(axis=1, keepdims=True))
    assert predictor.session.calls == [1, 4, 4]


def test_a_lone_request_on_a_quiet_queue_does_not_wait_the_delay(tmp_path):
    # A 20 s delay against a 5 s timeout: a request that waited for company would time out.
    config = BatchConfig(max_batch_size=8, max_queue_delay_ms=20_000, timeout_s=5)
    batcher, (predictor,) = make_batcher(tmp_path, config)

    async def main():
        batcher.start()
        answers = [await batcher.submit({"x": np.full((1, 4), i, np.float32)}, 1) for i in range(3)]
        await batcher.stop()
        return answers

    assert [a["y"].tolist() for a in run(main())] == [[[0.0]], [[4.0]], [[8.0]]]
    assert predictor.session.calls == [1, 1, 1]


def test_after_a_batch_of_several_a_lone_request_waits_for_company(tmp_path):
    config = BatchConfig(max_batch_size=8, max_queue_delay_ms=3_000, timeout_s=10)
    batcher, (predictor,) = make_batcher(tmp_path, config)
    x = {"x": np.ones((1, 4), np.float32)}

    async def main():
        first = await start_with_a_waiting_request(batcher, x)
        await asyncio.gather(first, batcher.submit(x, 1))
        await batcher.stop()

    run(main())
    assert predictor.session.calls == [2, 2]


@pytest.mark.parametrize("lone_waits", [False, True])
def test_lone_request_waits_makes_every_batch_wait_for_company(tmp_path, lone_waits):
    config = BatchConfig(
        max_batch_size=8, max_queue_delay_ms=3_000, timeout_s=10, lone_request_waits=lone_waits
    )
    batcher, (predictor,) = make_batcher(tmp_path, config)
    x = {"x": np.ones((1, 4), np.float32)}

    async def main():
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(x, 1))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, batcher.submit(x, 1))
        await batcher.stop()

    run(main())
    assert predictor.session.calls == ([2] if lone_waits else [1, 1])


def test_each_instance_runs_on_its_own_thread_and_stop_ends_them(tmp_path):
    batcher, predictors = make_batcher(tmp_path, BatchConfig(max_batch_size=1, instances=2))
    seen = []
    for predictor in predictors:
        run_one = predictor.session._run_impl

        def recording(inputs, run_one=run_one):
            seen.append(threading.current_thread().name)
            return run_one(inputs)

        predictor.session._run_impl = recording

    async def main():
        batcher.start()
        await asyncio.gather(
            *(batcher.submit({"x": np.ones((1, 4), np.float32)}, 1) for _ in range(6))
        )
        await batcher.stop()

    run(main())
    assert len(seen) == 6 and all(name == "model-fake" for name in seen)
    assert not [t for t in threading.enumerate() if t.name == "model-fake"]


def test_outputs_that_cannot_be_split_run_request_by_request_from_then_on(tmp_path):
    batcher, (predictor,) = make_batcher(tmp_path, BatchConfig(max_batch_size=8))
    run_one = predictor.session._run_impl

    def flattening(inputs):
        outputs = run_one(inputs)
        if len(inputs["x"]) == 1:
            return outputs
        return {"y": np.append(outputs["y"].reshape(-1), 0.0)}  # one value too many to split

    predictor.session._run_impl = flattening
    feeds = [np.full((1, 4), i, np.float32) for i in range(3)]

    async def main():
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit({"x": f}, 1) for f in feeds))
        await batcher.stop()
        return answers

    answers = run(main())
    assert [a["y"].tolist() for a in answers] == [[[0.0]], [[4.0]], [[8.0]]]
    assert batcher.max_batch == 1 and predictor.session.calls == [3, 1, 1, 1]


@pytest.mark.parametrize("sizes", [[1, 1, 1], [3]], ids=["three-requests", "one-of-three"])
def test_a_batch_that_fills_runs_at_once_without_waiting_the_delay(tmp_path, sizes):
    # A 20 s delay against a 5 s timeout: a full batch left waiting for the delay would time out.
    config = BatchConfig(max_batch_size=4, max_queue_delay_ms=20_000, timeout_s=5)
    batcher, (predictor,) = make_batcher(tmp_path, config)
    x = {"x": np.ones((1, 4), np.float32)}

    async def main():
        first = await start_with_a_waiting_request(batcher, x)
        rest = [batcher.submit({"x": np.ones((n, 4), np.float32)}, n) for n in sizes]
        await asyncio.gather(first, *rest)
        await batcher.stop()

    run(main())
    assert predictor.session.calls == [2, 4]


def test_closed_loop_clients_split_across_two_batches_join_up_again(tmp_path):
    # The queue delay is shorter than a model call: a request queued while a batch runs is past
    # its delay when that batch ends. Waiting from its own arrival, it would run alone and its
    # 15 peers after it, 1 + 15 alternating for good; waiting for as many samples as the recent
    # batches held brings all 16 back into one batch.
    config = BatchConfig(max_batch_size=32, max_queue_delay_ms=50, timeout_s=10)
    batcher, (predictor,) = make_batcher(tmp_path, config, delay_ms=100)
    x = {"x": np.ones((1, 4), np.float32)}

    async def client(start_after_s: float) -> None:
        await asyncio.sleep(start_after_s)
        for _ in range(10):
            await batcher.submit(x, 1)
            await asyncio.sleep(0.001)

    async def main():
        batcher.start()
        await asyncio.gather(client(0.0), *(client(0.02) for _ in range(15)))
        await batcher.stop()

    run(main())
    calls = predictor.session.calls
    assert calls[:2] == [1, 15] and sum(calls) == 160
    # On a loaded machine the 16 resubmissions can straddle two loop turns, and a batch then
    # leaves with the 15 it waits for; the straggler rejoins the next one. Alternating for good
    # would hold no batch of 16 at all.
    assert calls.count(16) >= 6, calls


def test_closed_loop_clients_keep_every_instance_busy(tmp_path):
    # Waiting for every client would gather all 32 into one batch at a time, the other instance
    # idle; each batch waits for its instance's share instead.
    config = BatchConfig(max_batch_size=32, max_queue_delay_ms=50, timeout_s=10, instances=2)
    batcher, predictors = make_batcher(tmp_path, config, delay_ms=100)
    x = {"x": np.ones((1, 4), np.float32)}

    async def client(think_s: float) -> None:
        for _ in range(8):
            await batcher.submit(x, 1)
            await asyncio.sleep(think_s)  # as answers leave one by one: spread over 16 ms

    async def main():
        batcher.start()
        await asyncio.gather(*(client(0.001 + i * 0.0005) for i in range(32)))
        await batcher.stop()

    run(main())
    calls = [predictor.session.calls for predictor in predictors]
    # the first batch takes all 32 (a quiet queue does not wait); after it, both instances share
    assert all(len(c) >= 6 for c in calls) and sum(c.count(32) for c in calls) == 1, calls


def test_clients_answered_together_split_between_idle_instances(tmp_path):
    # 16 clients that all resubmit in the same loop turn: one batch taking the whole queue
    # would run all 16 on one instance while the other sits idle, round after round.
    config = BatchConfig(max_batch_size=32, max_queue_delay_ms=50, timeout_s=10, instances=2)
    batcher, predictors = make_batcher(tmp_path, config, delay_ms=50)
    x = {"x": np.ones((1, 4), np.float32)}

    async def client() -> None:
        for _ in range(6):
            await batcher.submit(x, 1)

    async def main():
        batcher.start()
        await asyncio.gather(*(client() for _ in range(16)))
        await batcher.stop()

    run(main())
    calls = [predictor.session.calls for predictor in predictors]
    assert sum(map(sum, calls)) == 96 and all(len(c) >= 4 for c in calls), calls
    # the first batch takes all 16 (a quiet queue does not wait); every later one takes half
    assert sorted(sum(calls, []))[-2:] == [8, 16], calls
