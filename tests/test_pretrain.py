"""Greedy autoencoder pre-training and frozen-then-unfrozen fine-tuning."""

import importlib.util
import pathlib

import numpy as np
import pytest

import fastnn
from fastnn.callbacks import Callback
from fastnn.pretrain import FreezeLayers, dense_blocks, pretrain_autoencoders

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "pretraining.py"


def digits():
    X, y = fastnn.datasets.load_digits()
    return fastnn.preprocessing.Standardizer().fit_transform(X), y


def test_blocks_split_at_each_dense():
    d1, t1, d2, t2, drop = (
        fastnn.Dense(4, 3),
        fastnn.Tanh(),
        fastnn.Dense(3, 2),
        fastnn.ReLU(),
        fastnn.Dropout(0.1),
    )
    assert dense_blocks([d1, t1, d2, t2, drop]) == [[d1, t1], [d2, t2, drop]]
    with pytest.raises(ValueError, match="start with a Dense"):
        dense_blocks([t1, d1])
    with pytest.raises(ValueError, match="no Dense"):
        dense_blocks([])
    with pytest.raises(TypeError, match="not a Module"):
        dense_blocks([d1, 3])


def test_pretraining_trains_each_layer_to_reconstruct_its_input():
    X, _ = digits()
    fastnn.seed(0)
    stack = [fastnn.Dense(64, 32), fastnn.Tanh(), fastnn.Dense(32, 16), fastnn.Tanh()]
    before = [layer.weight.data.copy() for layer in stack[::2]]
    histories = pretrain_autoencoders(stack, X, epochs=10, batch_size=64, lr=3e-3)
    assert len(histories) == 2
    for h, layer, w0 in zip(histories, stack[::2], before):
        assert h["loss"][-1] < 0.6 * h["loss"][0]
        assert not np.array_equal(layer.weight.data, w0)  # trained in place
    # the second autoencoder reconstructs the first block's output, not X: its input
    # width is the first layer's output width
    h1 = fastnn.Sequential(*stack[:2]).predict(X)
    assert h1.shape == (len(X), 32)


def test_pretraining_rejects_bad_input():
    stack = [fastnn.Dense(64, 8)]
    with pytest.raises(ValueError, match=r"shape \(n, 64\)"):
        pretrain_autoencoders(stack, np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="noise"):
        pretrain_autoencoders(stack, np.zeros((5, 64), np.float32), noise=1.0)
    with pytest.raises(ValueError, match="epochs"):
        FreezeLayers(stack, epochs=-1)


class RecordWeights(Callback):
    def __init__(self, layer):
        self.layer, self.seen = layer, []

    def on_epoch_end(self, trainer, epoch, logs):
        self.seen.append(self.layer.weight.data.copy())


def test_freeze_layers_holds_them_for_the_first_epochs_then_trains_them():
    X, y = digits()
    fastnn.seed(0)
    low, head = fastnn.Dense(64, 16), fastnn.Dense(16, 10)
    model = fastnn.Sequential(low, fastnn.Tanh(), head)
    w0 = low.weight.data.copy()
    record = RecordWeights(low)
    trainer = fastnn.Trainer(
        model,
        fastnn.losses.CrossEntropyLoss(),
        fastnn.optim.Adam(model.parameters(), lr=1e-3),
        callbacks=[FreezeLayers([low], epochs=2), record],
    )
    trainer.fit(X[:200], y[:200], epochs=4, batch_size=32, verbose=0)
    np.testing.assert_array_equal(record.seen[0], w0)
    np.testing.assert_array_equal(record.seen[1], w0)
    assert not np.array_equal(record.seen[2], w0)
    assert not np.array_equal(record.seen[3], record.seen[2])
    assert low.weight.requires_grad  # unfrozen when fit ends


def test_example_pretraining_helps_with_few_labels():
    spec = importlib.util.spec_from_file_location("pretraining_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--seeds", "3"])
    random_init, pretrained = results["random init"], results["pre-trained + fine-tuned"]
    assert np.mean(pretrained) > np.mean(random_init)
    assert min(pretrained) > 0.75
