"""A GRU classifies MNIST-1D, reading each signal one sample per time step.

MNIST-1D (Greydanus, 2020; the `mnist1d` package) draws 1-D signals of length 40 from
ten digit-like templates with random padding, translation, shear, scaling and noise.
`make_dataset()` with its defaults gives 4,000 training and 1,000 test signals; the
paper reports 91% test accuracy for its GRU. Here each of the 40 samples is one time
step of a GRU (input size 1) whose final hidden state feeds a Dense classifier:

    Sequential(GRU(1, 64, batch_first=True, return_sequences=False), Dense(64, 10))

trained with Adam and gradient-norm clipping (the history records the norm).

    pip install mnist1d
    python examples/gru_mnist1d.py [--hidden 64] [--epochs 15] [--lr 0.01]
"""

import argparse
import time

import numpy as np

import fastnn
from fastnn.layers import GRU, Dense


def load_mnist1d():
    """(X_train, y_train, X_test, y_test); X of shape (N, 40, 1), float32."""
    from mnist1d.data import make_dataset

    d = make_dataset()
    prep = lambda x: x[..., None].astype(np.float32)  # noqa: E731
    return prep(d["x"]), d["y"].astype(np.int64), prep(d["x_test"]), d["y_test"].astype(np.int64)


def build(hidden):
    return fastnn.Sequential(
        GRU(1, hidden, batch_first=True, return_sequences=False), Dense(hidden, 10)
    )


def train(hidden=64, epochs=15, lr=0.01, batch_size=64, seed=0, verbose=1):
    """Train on MNIST-1D; returns (test accuracy, history)."""
    fastnn.seed(seed)
    X, y, X_test, y_test = load_mnist1d()
    model = build(hidden)
    trainer = fastnn.Trainer(
        model,
        fastnn.losses.CrossEntropyLoss(),
        fastnn.optim.Adam(model.parameters(), lr=lr),
        clip_grad_norm=5.0,
    )
    history = trainer.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=verbose)
    return trainer.evaluate(X_test, y_test)["accuracy"], history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    acc, history = train(args.hidden, args.epochs, args.lr, args.batch_size)
    norms = history.history.get("grad_norm", [])
    print(
        f"GRU({args.hidden}) on MNIST-1D: test accuracy {acc:.3f} after {args.epochs} "
        f"epochs ({time.perf_counter() - t0:.0f} s); mean gradient norm per epoch "
        f"{', '.join(f'{n:.2f}' for n in norms)}"
    )


if __name__ == "__main__":
    main()
