import time

from shipyard.bench import BenchConfig, time_blocks


def test_blocks_alternate_and_drop_the_first_calls():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: (order.append("b"), time.sleep(0.001))}
    config = BenchConfig(
        rounds=3, block_seconds=0.01, min_block=4, max_block=4, drop=1, warmup_calls=1
    )
    stats = time_blocks(calls, config)
    assert stats["a"].calls == 12 and stats["b"].calls == 12  # 3 rounds × 4 kept calls
    timed = [k for k in order[2:]]  # after one warm-up call each
    runs = [timed[i : i + 5] for i in range(0, len(timed), 5)]  # blocks of 4 + 1 dropped
    assert [r[0] for r in runs] == ["a", "b"] * 3
    assert all(len(set(r)) == 1 for r in runs)
    assert stats["b"].p50_ms >= 1.0 > stats["a"].p50_ms
    assert stats["b"].p50_ms <= stats["b"].p90_ms <= stats["b"].p99_ms
