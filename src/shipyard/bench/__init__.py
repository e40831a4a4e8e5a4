"""Honest timing: warm-up, alternating blocks of calls, medians and percentiles."""

from shipyard.bench.timing import BenchConfig, LatencyStats, rss_mb, time_blocks, time_sessions

__all__ = ["BenchConfig", "LatencyStats", "rss_mb", "time_blocks", "time_sessions"]
