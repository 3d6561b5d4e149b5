"""The memory figures of `fastnn bench` (fastnn.bench.compare.held_bytes, bench_memory)."""
import numpy as np

import fastnn
from fastnn.bench import compare
from fastnn.losses import CrossEntropyLoss
from fastnn.optim import Adam


def test_held_bytes_counts_each_buffer_once_and_skips_excluded_owners():
    a, b = np.zeros(1000), np.zeros((10, 10), np.float32)
    assert compare.held_bytes({"a": a, "views": [a[:10], a.reshape(10, 100)], "t": (b,)}) \
        == a.nbytes + b.nbytes
    assert compare.held_bytes([a, b.T], exclude=(a[:3],)) == b.nbytes


def test_held_bytes_of_a_trainer_covers_parameters_gradients_and_adam_state():
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(20, 30), fastnn.ReLU(), fastnn.Dense(30, 4))
    trainer = fastnn.Trainer(model, CrossEntropyLoss(), Adam(model.parameters()), metrics=())
    X = np.random.default_rng(0).standard_normal((64, 20), dtype=np.float32)
    y = np.arange(64) % 4
    trainer.train_step(X, y)
    p_bytes = sum(p.data.nbytes for p in model.parameters())
    held = compare.held_bytes(trainer, exclude=(X, y))
    # parameters, gradients, two Adam moments, and at least the (64, 30) activations
    assert held >= 4 * p_bytes + 64 * 30 * 4
    assert held < 4 * p_bytes + 64 * 30 * 4 * 20  # and not the world


def test_bench_memory_finds_no_temporaries_beyond_what_the_trainer_holds():
    X, y = compare.make_data(n=512)
    m = compare.bench_memory(X, y, batch=128, threads=1)
    assert m["retained_bytes"] < m["smallest_step_array_bytes"]
    assert m["peak_bytes"] < m["smallest_step_array_bytes"]
    assert m["held_bytes"] > 4 * m["parameter_bytes"]
    assert m["held_bytes"] <= m["step_peak_bytes"] <= 1.3 * m["held_bytes"]
