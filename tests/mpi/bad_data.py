"""Run by tests/test_distributed.py under mpiexec -n 3: a NaN in the last rank's block of
the data; every rank must raise the same error from fit (and print it)."""

import numpy as np

import fastnn

X = np.ones((30, 4), np.float32)
X[-1, 2] = np.nan  # in rank 2's block
y = np.zeros(30, np.int64)
model = fastnn.Sequential(fastnn.Dense(4, 2))
trainer = fastnn.Trainer(
    model, fastnn.losses.CrossEntropyLoss(), fastnn.optim.SGD(model.parameters(), lr=0.1)
)
try:
    trainer.fit(X, y, epochs=1, verbose=0)
except ValueError as e:
    print(f"ValueError: {e}", flush=True)
