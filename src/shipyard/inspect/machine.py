"""This machine's peak: float32 GEMM throughput and memory bandwidth, measured, not looked up."""

from __future__ import annotations

import time

import numpy as np

from shipyard.inspect.records import Machine


def measure_machine(threads: int, seconds: float = 0.6) -> Machine:
    """Best of a few timed runs of a square float32 matmul and of a 64 MiB copy."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        size = 1024
        a, b = torch.randn(size, size), torch.randn(size, size)
        gemm = _best(lambda: torch.mm(a, b), seconds / 2)
        source = np.ones(16 * 2**20, dtype=np.float32)
        target = np.empty_like(source)
        copy = _best(lambda: np.copyto(target, source), seconds / 2)
    finally:
        torch.set_num_threads(previous)
    return Machine(
        peak_gflops=2 * size**3 / gemm / 1e9,
        bandwidth_gbs=2 * source.nbytes / copy / 1e9,
        threads=threads,
    )


def _best(function, budget: float) -> float:
    function()
    best = float("inf")
    end = time.perf_counter() + budget
    runs = 0
    while runs < 3 or time.perf_counter() < end:
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return best
