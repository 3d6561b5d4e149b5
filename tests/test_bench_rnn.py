"""The recurrent section of `fastnn bench` (fastnn/bench/rnn.py) on a tiny budget: the
GEMM bound runs the same kernels' products only, the PyTorch worker answers, the tables
report each target."""

import argparse

import numpy as np
import pytest

from fastnn.bench import rnn

OPTS = argparse.Namespace(repeats=1, min_time=1e-3, warmup=1e-3, pause=0.0)


def test_gemm_bound_leaves_out_the_gate_arithmetic():
    ours, bound = rnn.FastnnRNN("lstm", 1, 4), rnn.GemmBound("lstm", 1, 4)
    ours.forward()
    y = ours.layer._last_ctx.workspace("y0", (4 * rnn.STEPS, rnn.HIDDEN), np.float32).copy()
    assert np.abs(y).max() <= 1  # an LSTM output is o * tanh(c)
    bound.forward()  # products only: the gates stay unsquashed pre-activations
    gates = bound.layer._last_ctx.cells[0]["gates"]
    assert np.abs(gates).max() > 1


def test_section_measures_and_reports_each_target():
    pytest.importorskip("torch")
    worker = rnn.TorchWorker.start("fastnn.bench.rnn:worker_main")
    assert worker is not None
    try:
        rows = rnn.bench_rnn(
            worker,
            OPTS,
            threads=1,
            batches=(4,),
            layers=(1,),
            kinds=("lstm", "gru"),
            log=lambda m: None,
        )
    finally:
        worker.close()
    assert worker.proc.returncode == 0
    assert {(r["kind"], r["mode"]) for r in rows} == {
        (k, m) for k in ("lstm", "gru") for m in ("train", "infer")
    }
    for r in rows:
        assert r["fastnn_per_s"] > 0 and r["torch_per_s"] > 0 and r["gemm_bound_per_s"] > 0
    table = rnn.rnn_table(rows, "train")
    assert ">= 2x PyTorch" in table and "<= 1.15x bound" in table
    prof = rnn.profile_rnn("gru", 1, 4, OPTS, threads=1)
    assert "forward" in rnn.profile_table(prof, "gru", 1, 4)
