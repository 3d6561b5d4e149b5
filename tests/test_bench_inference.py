"""`fastnn bench --inference` (fastnn/bench/inference.py): the worker protocol and the
targets computed from measurements."""

import numpy as np
import pytest

from fastnn.bench import inference as bench


def test_fastnn_worker_times_its_cases(tmp_path):
    weights = tmp_path / "w.npz"
    np.savez(weights, **bench.build_model().state_dict())
    np.savez(bench._lenet_path(str(weights)), **bench.build_lenet().state_dict())
    worker = bench.Worker("fastnn", str(weights), 1)
    try:
        assert worker.cases == [
            "fastnn predict",
            "fastnn compiled",
            "fastnn uncompiled",
            "fastnn GEMMs alone",
            "LeNet-5: fastnn predict",
            "LeNet-5: fastnn uncompiled",
        ]
        per_call = worker.ask(
            cmd="time", case="fastnn predict", batch=1, seconds=0.01, per_call=True
        )
        assert len(per_call["result"]) == per_call["calls"] >= 1
        assert per_call["threads"] == 1  # the thread count in use, reported by fastnn
        assert sum(per_call["result"]) > 0
        total = worker.ask(
            cmd="time", case="fastnn GEMMs alone", batch=16, seconds=0.01, per_call=False
        )
        assert total["calls"] >= 1 and total["result"] >= 0.01
        lenet = worker.ask(
            cmd="time", case="LeNet-5: fastnn predict", batch=4, seconds=0.01, per_call=False
        )
        assert lenet["calls"] >= 1
        with pytest.raises(RuntimeError, match="unknown command"):
            worker.ask(cmd="nonsense")
        with pytest.raises(RuntimeError, match="KeyError"):
            worker.ask(cmd="time", case="no such case", batch=1, seconds=0.01, per_call=False)
    finally:
        worker.close()
    assert worker.proc.returncode == 0


def test_targets_from_measurements():
    def row(median, p99=None):
        return {"median_s": median, "p99_s": p99, "samples_per_s": 1 / median}

    results = {
        1: {"fastnn predict": row(10e-6, 15e-6), "PyTorch": row(40e-6), "onnxruntime": row(11e-6)},
        256: {
            "fastnn predict": row(1e-3),
            "fastnn compiled": row(1e-3),
            "fastnn GEMMs alone": row(0.8e-3),
            "PyTorch": row(1.4e-3),
            "onnxruntime": row(0.9e-3),
        },
    }
    got = {t["target"]: (round(t["value"], 3), t["met"]) for t in bench.targets(results)}
    assert got == {
        "batch 1 latency: PyTorch / fastnn (median)": (4.0, True),
        "batch 1 latency: onnxruntime / fastnn (median)": (1.1, True),
        "batch 1 latency: fastnn p99 / median": (1.5, True),
        "batch 256 throughput: fastnn / PyTorch": (1.4, False),
        "batch 256 throughput: fastnn / onnxruntime": (0.9, False),
        "batch 256: compiled predictor / its GEMMs alone": (1.25, False),
    }
    text = bench.report(results, 2, {"fastnn": "0"}, None, 7, 0.2)
    assert "[NOT MET] batch 256 throughput: fastnn / PyTorch: 1.40x (>= 1.5x)" in text


def test_what_the_machine_allows_beside_the_targets():
    # 1.34 MFLOP per row; PyTorch at 100,000 rows/s does 134 GFLOP/s of a 226 GFLOP/s
    # peak, so no library can be more than 226 / 134 = 1.69x faster than it here.
    def row(samples_per_s, p99=None):
        return {"median_s": 256 / samples_per_s, "samples_per_s": samples_per_s, "p99_s": p99}

    results = {
        1: {"fastnn predict": {"median_s": 20e-6, "p99_s": 45e-6}},
        256: {"fastnn predict": row(147_000), "PyTorch": row(100_000)},
    }
    # 1,000 interruptions/s over the threads: a 20 us call is hit 2% of the time, so its
    # p99 is 20 us + the median interruption (10 us here).
    machine = {
        "peak_gflops": 226.0,
        "flops_per_row": 1.34e6,
        "interruptions": {"per_second": 1000.0, "gaps_us": np.linspace(5.0, 15.0, 101)},
    }
    got = {t["target"]: t for t in bench.targets(results, machine)}
    vs_torch = got["batch 256 throughput: fastnn / PyTorch"]
    assert vs_torch["value"] == pytest.approx(1.47)
    assert vs_torch["limit"] == pytest.approx(226 / 134)
    tail = got["batch 1 latency: fastnn p99 / median"]
    assert tail["value"] == pytest.approx(2.25)
    assert tail["limit"] == pytest.approx(1.5)
    assert all(t["limit"] is None for t in bench.targets(results))  # nothing measured
    assert "NOTE: fastnn's thread governor" not in bench.report(results, 2, {}, None, 7, 0.2)
    results[256]["fastnn predict"]["fewest_threads"] = 1
    assert "fewer threads (fewest): fastnn predict at batch 256: 1" in bench.report(
        results, 2, {}, None, 7, 0.2
    )
    text = bench.report(results, 2, {}, None, 7, 0.2, machine)
    assert "peak on 2 threads: 226 GFLOP/s" in text
    assert "batch 256: fastnn predict 197 GFLOP/s (87%), PyTorch 134 GFLOP/s (59%)" in text
    assert "(>= 1.5x; at most 1.69x on this CPU)" in text
    assert "500 times/s per thread, for a median 10 us" in text
    assert "is hit 2.0% of the time: expect a 99th percentile near 30.0 us (1.50x" in text
    assert "p99 / median: 2.25x (<= 2x; ~1.50x from this machine's interruptions alone)" in text


def test_p99_floor_only_above_one_percent():
    from fastnn.bench.harness import p99_floor

    rare = {"per_second": 400.0, "gaps_us": np.array([20.0])}
    assert p99_floor(rare, 20e-6) == 20e-6  # hit 0.8% of the time: no floor
    assert p99_floor(rare, 50e-6) == pytest.approx(70e-6)  # hit 2%
    assert p99_floor({"per_second": 0.0, "gaps_us": np.array([])}, 1e-3) == 1e-3


def test_flops_per_row_counts_the_dense_layers():
    # 784*512 + 512*512 + 512*10 multiply-adds, two operations each
    assert bench.flops_per_row(bench.build_model()) == 2 * (784 * 512 + 512 * 512 + 512 * 10)
