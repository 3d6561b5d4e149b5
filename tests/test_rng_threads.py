"""Per-trainer random streams: two trainers in two threads draw exactly what they draw
one after the other (shuffling and dropout masks), and checkpoints keep a trainer's
stream."""

import threading

import numpy as np
import pytest

import fastnn
from fastnn import optim, rng
from fastnn.losses import CrossEntropyLoss


def _trainer(seed):
    fastnn.seed(seed)
    model = fastnn.Sequential(
        fastnn.Dense(64, 32), fastnn.ReLU(), fastnn.Dropout(0.3), fastnn.Dense(32, 10)
    )
    return fastnn.Trainer(model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.05))


def _fit(trainer, X, y):
    trainer.fit(X, y, epochs=3, batch_size=32, verbose=0)
    return trainer.model.state_dict()


def test_two_trainers_in_threads_equal_running_them_in_turn():
    X, y = fastnn.datasets.load_digits()
    X = X / 16
    sequential = [_fit(_trainer(s), X, y) for s in (1, 2)]
    for _ in range(3):
        trainers = [_trainer(s) for s in (1, 2)]
        results = [None, None]

        def run(i):
            results[i] = _fit(trainers[i], X, y)

        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for got, want in zip(results, sequential):
            for k in want:
                np.testing.assert_array_equal(got[k], want[k])


def test_a_trainer_seed_fixes_its_stream_whatever_fastnn_seed_says():
    X, y = fastnn.datasets.load_digits()
    X = X / 16
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(64, 10), fastnn.Dropout(0.2))
    init = model.state_dict()
    states = []
    for global_seed in (5, 6):
        model.load_state_dict(init)
        fastnn.seed(global_seed)
        t = fastnn.Trainer(
            model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), seed=123
        )
        t.fit(X, y, epochs=1, verbose=0)
        states.append(model.state_dict())
    for k in states[0]:
        np.testing.assert_array_equal(states[0][k], states[1][k])
    with pytest.raises(ValueError, match="seed"):
        fastnn.Trainer(model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), seed=-1)


def test_using_makes_a_stream_current_in_this_thread_only():
    a, b = rng.Stream(1), rng.Stream(1)
    with rng.using(a):
        first = rng.generator().random()
        assert rng.next_dropout_stream() == (a.dropout_key, 0)
        seen = []
        t = threading.Thread(target=lambda: seen.append(rng.generator() is a.generator))
        t.start()
        t.join()
        assert seen == [False]  # another thread has its own current stream
    assert rng.generator() is not a.generator
    assert b.generator.random() == first
