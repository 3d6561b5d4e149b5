"""Run by tests/test_distributed.py, on one process (imported) and under mpiexec: train a
small model on the digits with a given optimizer and layer mix; under mpiexec every rank
writes its final state to <out>.rank<r>.npz and rank 0 writes the History."""

import json
import sys

import numpy as np

import fastnn


def model_for(kind, dtype):
    """Dense(64, 32) [norm] Tanh [Dropout(0.3)] Dense(32, 10); kind: 'plain',
    'dropout', 'bn' (local BatchNorm1d), 'syncbn' (SyncBatchNorm), 'syncbn-dropout'."""
    bn = kind.startswith("syncbn") or kind == "bn"  # no bias before a batch norm
    layers = [fastnn.Dense(64, 32, bias=not bn, dtype=dtype)]
    if kind.startswith("syncbn"):
        layers.append(fastnn.layers.SyncBatchNorm(32, dtype=dtype))
    elif kind == "bn":
        layers.append(fastnn.BatchNorm1d(32, dtype=dtype))
    layers.append(fastnn.Tanh())
    if kind.endswith("dropout"):
        layers.append(fastnn.Dropout(0.3))
    layers.append(fastnn.Dense(32, 10, dtype=dtype))
    return fastnn.Sequential(*layers)


def data(dtype):
    X, y = fastnn.datasets.load_digits(dtype=dtype)
    return X[:600] / 16.0, y[:600], X[600:800] / 16.0, y[600:800]


def train(kind, opt, epochs, batch, dtype, checkpoint=None, resume=None):
    fastnn.seed(0)
    X, y, Xv, yv = data(dtype)
    model = model_for(kind, dtype)
    optimizer = (
        fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if opt == "sgd"
        else fastnn.optim.Adam(model.parameters(), lr=1e-2)
    )
    trainer = fastnn.Trainer(model, fastnn.losses.CrossEntropyLoss(), optimizer)
    if resume:
        trainer.load_checkpoint(resume)
    trainer.fit(
        X,
        y,
        epochs=epochs,
        batch_size=batch,
        validation_data=(Xv, yv),
        verbose=0,
        initial_epoch=trainer.epoch if resume else None,
    )
    if checkpoint:
        trainer.save_checkpoint(checkpoint)
    return trainer


if __name__ == "__main__":
    kind, opt, epochs, batch, dtype, out = sys.argv[1:7]
    resume = sys.argv[7] if len(sys.argv) > 7 and sys.argv[7] != "-" else None
    checkpoint = sys.argv[8] if len(sys.argv) > 8 else None
    trainer = train(kind, opt, int(epochs), int(batch), np.dtype(dtype), checkpoint, resume)
    from fastnn import distributed

    np.savez(f"{out}.rank{distributed.rank()}.npz", **trainer.model.state_dict())
    if distributed.is_main_process():
        with open(f"{out}.history.json", "w") as f:
            json.dump(trainer.history.history, f)
