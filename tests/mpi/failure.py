"""Run by tests/test_distributed.py under mpiexec: rank 1 fails while the other ranks
wait in a collective. argv[1]: 'raise' (an uncaught exception), 'die' (killed) or
'fit-raise' (an exception from a callback in the middle of an epoch of fit)."""

import os
import signal
import sys

import numpy as np

from fastnn import distributed

world = distributed.init()
world.allreduce_(np.ones(4))  # every rank is up
if sys.argv[1] == "fit-raise":
    import fastnn

    class Fail(fastnn.callbacks.Callback):
        def on_batch_end(self, trainer, batch, logs):
            if world.rank == 1 and batch == 3:
                raise RuntimeError("rank 1 failed on purpose")

    X, y = fastnn.datasets.load_digits()
    model = fastnn.Sequential(fastnn.Dense(64, 10))
    fastnn.Trainer(
        model,
        fastnn.losses.CrossEntropyLoss(),
        fastnn.optim.SGD(model.parameters(), lr=0.1),
        callbacks=[Fail()],
    ).fit(X, y, epochs=2, verbose=0)
if world.rank == 1:
    if sys.argv[1] == "raise":
        raise RuntimeError("rank 1 failed on purpose")
    os.kill(os.getpid(), signal.SIGKILL)
world.allreduce_(np.ones(4))  # never completes: rank 1 is gone
print("unreachable", flush=True)
