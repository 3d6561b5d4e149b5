"""Greedy layer-wise autoencoder pre-training (Bengio et al., 2007; Vincent et al., 2008)
and fine-tuning with the pre-trained layers frozen for the first epochs.

    stack = [Dense(64, 128), Tanh(), Dense(128, 64), Tanh()]
    model = Sequential(*stack, Dense(64, 10))
    pretrain_autoencoders(stack, X_unlabelled, epochs=20)     # no labels needed
    trainer.fit(X, y, epochs=60, callbacks=[FreezeLayers(stack, epochs=20)])

Each Dense layer of the stack, with the layers after it up to the next Dense (its
activation, dropout, ...), is the encoder of a one-hidden-layer autoencoder trained to
reconstruct that block's input (the raw data for the first block, the output of the
already pre-trained blocks below for the others) with a new linear Dense decoder and the
mean squared error. The encoder's weights are trained in place; the decoder is dropped.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .callbacks import Callback
from .layers import Dense, Dropout
from .losses import MSELoss
from .module import Module
from .optim import Adam
from .sequential import Sequential
from .trainer import History, Trainer
from .validation import as_array


def dense_blocks(layers: Iterable[Module]) -> list[list[Any]]:
    """The stack split into blocks, each a Dense layer and the non-Dense layers after it
    (layers before the first Dense are an error: they have no encoder to join)."""
    layers = list(layers)
    blocks: list[list[Any]] = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, Module):
            raise TypeError(f"pretrain: item {i} of the stack is not a Module: {layer!r}")
        if isinstance(layer, Dense):
            blocks.append([layer])
        elif not blocks:
            raise ValueError(
                f"pretrain: the stack must start with a Dense layer, got "
                f"{type(layer).__name__} at position {i}"
            )
        else:
            blocks[-1].append(layer)
    if not blocks:
        raise ValueError("pretrain: the stack holds no Dense layer")
    return blocks


def pretrain_autoencoders(
    layers: Iterable[Module],
    X: np.ndarray,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    noise: float = 0.0,
    verbose: int = 0,
) -> list[History]:
    """Pre-train the Dense layers of `layers` (a list of modules or a Sequential), bottom
    up, each as the encoder of an autoencoder of its block's input, on X (n, features):
    unlabelled data. noise > 0 makes them denoising autoencoders: a Dropout(noise) on the
    block's input (the clean input is the target). Returns one History (the
    reconstruction loss per epoch) per block."""
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"pretrain_autoencoders: noise must be in [0, 1), got {noise}")
    blocks = dense_blocks(layers)
    h = as_array(X, "pretrain_autoencoders X")
    if h.ndim != 2 or h.shape[1] != blocks[0][0].in_features:
        raise ValueError(
            f"pretrain_autoencoders: expected X of shape (n, "
            f"{blocks[0][0].in_features}), got {h.shape}"
        )
    histories = []
    for block in blocks:
        encoder = Sequential(*block)
        dense = block[0]
        decoder = Dense(dense.out_features, dense.in_features, dtype=dense.weight.dtype)
        noisy = [Dropout(noise)] if noise > 0 else []
        autoencoder = Sequential(*noisy, *block, decoder)
        trainer = Trainer(autoencoder, MSELoss(), Adam(autoencoder.parameters(), lr=lr))
        h = np.ascontiguousarray(h, dtype=dense.weight.dtype)
        histories.append(trainer.fit(h, h, epochs=epochs, batch_size=batch_size, verbose=verbose))
        h = encoder.predict(h)
    return histories


class FreezeLayers(Callback):
    """Keep `layers` (modules, e.g. the pre-trained stack) frozen for the first `epochs`
    epochs of a fit, then train them with the rest (fine-tuning: the new layers on top
    first learn from fixed features, then everything adapts). Unfrozen at the end of
    fit in any case."""

    def __init__(self, layers: Iterable[Module], epochs: int):
        self.layers = list(layers)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"FreezeLayers: epochs must be a non-negative integer, got {epochs!r}")
        self.epochs = int(epochs)

    def _set(self, frozen):
        for layer in self.layers:
            layer.freeze() if frozen else layer.unfreeze()

    def on_epoch_begin(self, trainer, epoch):
        self._set(epoch <= self.epochs)

    def on_train_end(self, trainer):
        self._set(False)
