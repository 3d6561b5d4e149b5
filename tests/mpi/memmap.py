"""Run by tests/test_distributed.py under mpiexec: train on a memory-mapped file whose
row reads are recorded; every rank writes the rows it read, per epoch, to
<out>.rank<r>.json."""

import json
import sys

import numpy as np

import fastnn
from fastnn import distributed


class RecordingMemmap(np.memmap):
    """A memmap that records the rows gathered from it (np.take calls .take)."""

    reads = []

    def take(self, indices, axis=None, out=None, mode="raise"):
        RecordingMemmap.reads.extend(int(i) for i in np.asarray(indices).ravel())
        return np.asarray(self).take(indices, axis=axis, out=out, mode=mode)


path, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
X = np.load(path, mmap_mode="r")
X = RecordingMemmap(path, dtype=X.dtype, mode="r", offset=X.offset, shape=X.shape)
y = (np.asarray(X[:, 0]) > 0).astype(np.int64)
fastnn.seed(0)
model = fastnn.Sequential(fastnn.Dense(X.shape[1], 8), fastnn.ReLU(), fastnn.Dense(8, 2))
trainer = fastnn.Trainer(
    model, fastnn.losses.CrossEntropyLoss(), fastnn.optim.SGD(model.parameters(), lr=0.1)
)
epochs = []


class PerEpoch(fastnn.callbacks.Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        epochs.append(sorted(RecordingMemmap.reads))
        RecordingMemmap.reads = []


trainer.callbacks.append(PerEpoch())
trainer.fit(X, y, epochs=2, batch_size=batch, verbose=0)
with open(f"{out}.rank{distributed.rank()}.json", "w") as f:
    json.dump(epochs, f)
