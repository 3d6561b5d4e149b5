"""pytest-benchmark cases of fastnn, each next to its NumPy (and PyTorch) counterpart.

Run with `pytest bench/ --benchmark-only` (the default `pytest` run collects tests/
only). Threads: FASTNN_BENCH_THREADS=n sets fastnn's OpenMP, every BLAS and torch to n
threads (default: as the process starts, i.e. all available cores). pytest-benchmark
times each case on its own, one after the other; the interleaved, side-by-side ratios
that docs/performance.md's targets are judged on come from `fastnn bench`."""

import os

import pytest

from fastnn.bench import harness, workloads


@pytest.fixture(scope="session", autouse=True)
def bench_threads():
    n = os.environ.get("FASTNN_BENCH_THREADS")
    if n:
        harness.set_threads(int(n))
        try:
            import torch
        except Exception:
            return n
        torch.set_num_threads(int(n))
    return n


@pytest.fixture(scope="session")
def data():
    """The preloaded MLP-BN data set: X (16384, 784) float32, int64 labels."""
    return workloads.make_data()
