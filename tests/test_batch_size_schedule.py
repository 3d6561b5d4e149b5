"""BatchSizeSchedule: batch size and learning-rate factor per epoch."""

import math

import numpy as np
import pytest

from fastnn.schedules import BatchSizeSchedule


def test_doubles_after_each_milestone_like_multistep():
    s = BatchSizeSchedule([2, 4])
    assert [s.batch_size(t, 32) for t in range(6)] == [32, 32, 64, 64, 128, 128]
    assert [s.lr_factor(t, 32) for t in range(6)] == [1.0] * 6


def test_factor_cap_and_lr_scaling():
    s = BatchSizeSchedule([1, 2, 3], factor=3, scale_lr="linear", max_batch_size=100)
    assert [s.batch_size(t, 10) for t in range(4)] == [10, 30, 90, 100]
    assert [s.lr_factor(t, 10) for t in range(4)] == [1.0, 3.0, 9.0, 10.0]
    r = BatchSizeSchedule([1], scale_lr="sqrt")
    assert r.lr_factor(1, 16) == math.sqrt(2)
    assert BatchSizeSchedule([1], max_batch_size=8).batch_size(1, 16) == 16  # never shrinks


def test_bad_arguments():
    with pytest.raises(ValueError, match="milestones"):
        BatchSizeSchedule([0])
    with pytest.raises(ValueError, match="factor"):
        BatchSizeSchedule([1], factor=0)
    with pytest.raises(ValueError, match="scale_lr"):
        BatchSizeSchedule([1], scale_lr="cubic")


def _trainer(schedule, lr=0.05, scheduler=None):
    import fastnn

    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(64, 16), fastnn.ReLU(), fastnn.Dense(16, 10))
    opt = fastnn.optim.SGD(model.parameters(), lr=lr)
    sched = None if scheduler is None else scheduler(opt)
    return fastnn.Trainer(
        model, fastnn.losses.CrossEntropyLoss(), opt, scheduler=sched, batch_size_schedule=schedule
    )


def _digits():
    import fastnn

    X, y = fastnn.datasets.load_digits()
    return X[:512] / 16.0, y[:512]


class CountBatches:
    """Records the batch sizes seen in each epoch."""

    def __init__(self):
        import fastnn

        outer = self

        class _CB(fastnn.callbacks.Callback):
            def on_epoch_begin(self, trainer, epoch):
                outer.epochs.append([])

            def on_batch_end(self, trainer, batch, logs):
                outer.epochs[-1].append(logs["size"])

        self.epochs, self.callback = [], _CB()


def test_trainer_follows_the_schedule_and_records_it():
    X, y = _digits()
    trainer = _trainer(BatchSizeSchedule([4, 8], scale_lr="linear"), lr=0.1)
    seen = CountBatches()
    trainer.callbacks.append(seen.callback)
    history = trainer.fit(X, y, epochs=12, batch_size=32, verbose=0)
    assert history["batch_size"] == [32] * 4 + [64] * 4 + [128] * 4
    assert [len(e) for e in seen.epochs] == [16] * 4 + [8] * 4 + [4] * 4
    assert {s for e in seen.epochs for s in e} == {32, 64, 128}
    assert history["lr"] == pytest.approx([0.1] * 4 + [0.2] * 4 + [0.4] * 4)
    assert history["accuracy"][-1] > 0.9


def test_without_lr_scaling_the_lr_stays_and_a_resumed_fit_continues(tmp_path):
    X, y = _digits()
    straight = _trainer(BatchSizeSchedule([2]))
    straight.fit(X, y, epochs=4, batch_size=32, verbose=0)
    assert straight.history["lr"] == [0.05] * 4
    first = _trainer(BatchSizeSchedule([2]))
    first.fit(X, y, epochs=2, batch_size=32, verbose=0)
    first.save_checkpoint(tmp_path / "c.safetensors")
    resumed = _trainer(BatchSizeSchedule([2])).load_checkpoint(tmp_path / "c.safetensors")
    resumed.fit(X, y, epochs=4, initial_epoch=resumed.epoch, batch_size=32, verbose=0)
    assert resumed.history["batch_size"] == straight.history["batch_size"] == [32, 32, 64, 64]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_lr_scaling_composes_with_an_lr_schedule():
    import fastnn

    X, y = _digits()
    trainer = _trainer(
        BatchSizeSchedule([1], scale_lr="linear"),
        scheduler=lambda opt: fastnn.schedules.ExponentialDecay(opt, 0.5),
    )
    history = trainer.fit(X, y, epochs=3, batch_size=64, verbose=0)
    # decay by 0.5 per epoch, doubled once with the batch size after epoch 1
    assert history["lr"] == pytest.approx([0.05, 0.05, 0.025])


def test_trainer_rejects_another_object():
    with pytest.raises(TypeError, match="BatchSizeSchedule"):
        _trainer([1, 2])
