"""The memory figures of `fastnn bench` (fastnn.bench.sections.held_bytes, bench_memory)."""

import numpy as np

import fastnn
from fastnn.bench import report, sections, workloads
from fastnn.losses import CrossEntropyLoss
from fastnn.optim import Adam


def test_held_bytes_counts_each_buffer_once_and_skips_excluded_owners():
    a, b = np.zeros(1000), np.zeros((10, 10), np.float32)
    assert (
        sections.held_bytes({"a": a, "views": [a[:10], a.reshape(10, 100)], "t": (b,)})
        == a.nbytes + b.nbytes
    )
    assert sections.held_bytes([a, b.T], exclude=(a[:3],)) == b.nbytes


def test_held_bytes_of_a_trainer_covers_parameters_gradients_and_adam_state():
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(20, 30), fastnn.ReLU(), fastnn.Dense(30, 4))
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), Adam(model.parameters()), metrics=())
    X = np.random.default_rng(0).standard_normal((64, 20), dtype=np.float32)
    y = np.arange(64) % 4
    trainer.train_step(X, y)
    p_bytes = sum(p.data.nbytes for p in model.parameters())
    held = sections.held_bytes(trainer, exclude=(X, y))
    # parameters, gradients, two Adam moments, and at least the (64, 30) activations
    assert held >= 4 * p_bytes + 64 * 30 * 4
    assert held < 4 * p_bytes + 64 * 30 * 4 * 20  # and not the world


def test_bench_memory_finds_no_temporaries_beyond_what_the_trainer_holds():
    X, y = workloads.make_data(n=512)
    m = sections.bench_memory(X, y, batch=128, threads=1)
    assert m["retained_bytes"] < m["smallest_step_array_bytes"]
    assert m["peak_bytes"] < m["smallest_step_array_bytes"]
    assert m["held_bytes"] > 4 * m["parameter_bytes"]
    assert m["held_bytes"] <= m["step_peak_bytes"] <= 1.3 * m["held_bytes"]


def test_bench_scaling_trains_one_epoch_per_size_without_copying_the_data():
    rows = sections.bench_scaling((2048, 8192), batch=256, threads=1, log=lambda msg: None)
    assert [r["n"] for r in rows] == [2048, 8192]
    for r in rows:
        assert r["data_bytes"] == r["n"] * 784 * 4
        assert r["epoch_s"] > 0 and r["us_per_sample"] == 1e6 * r["epoch_s"] / r["n"]
    # What fit allocates grows with N by the shuffled order (8 B per sample), not by a
    # copy of the data (3,136 B per sample). (Its N-independent part is mostly the
    # TerminateOnNaN snapshot of the parameters and Adam state.)
    grew = rows[-1]["fit_peak_bytes"] - rows[0]["fit_peak_bytes"]
    assert grew < 0.05 * (rows[-1]["data_bytes"] - rows[0]["data_bytes"])
    assert "8,192" in report.scaling_table(rows)
