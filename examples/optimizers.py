"""The same small MLP trained with each of fastnn's optimizers, side by side.

Plain gradient descent improves in three classic ways: momentum, a learning rate
adapted to each parameter from the history of its gradients (Adagrad's root mean
square, RMSProp's moving average, Adam = RMSProp + momentum), and a learning rate that
changes over time. This script trains one 64 -> 64 -> 10 ReLU network on the UCI
digits (standardised with statistics of the training split only) from the *same*
initial weights and the same batch order with SGD, SGD + momentum, SGD + Nesterov,
Adagrad, RMSprop, Adadelta, Adam, AdamW, Adamax and NAdam, plots the training-loss
curves in one panel per optimizer, and prints a table of the final figures.

    python examples/optimizers.py [--out optimizers.png] [--epochs 30] [--batch-size 32]

The learning rates are the usual defaults of each method (torch.optim's, except plain
SGD, which needs a larger one); they are not tuned per method.
"""

import argparse
import time

import numpy as np

import fastnn
from fastnn import optim
from fastnn.datasets import load_digits
from fastnn.losses import CrossEntropyLoss
from fastnn.preprocessing import Standardizer, train_test_split

# name -> (optimizer class, keyword arguments)
OPTIMIZERS = {
    "SGD": (optim.SGD, dict(lr=0.05)),
    "SGD + momentum": (optim.SGD, dict(lr=0.05, momentum=0.9)),
    "SGD + Nesterov": (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    "Adagrad": (optim.Adagrad, dict(lr=0.05)),
    "RMSprop": (optim.RMSprop, dict(lr=1e-3)),
    "Adadelta": (optim.Adadelta, dict(lr=1.0)),
    "Adam": (optim.Adam, dict(lr=1e-3)),
    "AdamW": (optim.AdamW, dict(lr=1e-3, weight_decay=1e-2)),
    "Adamax": (optim.Adamax, dict(lr=2e-3)),
    "NAdam": (optim.NAdam, dict(lr=2e-3)),
}


def make_model():
    return fastnn.Sequential(fastnn.Dense(64, 64), fastnn.ReLU(), fastnn.Dense(64, 10))


def load_data(seed):
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, seed=seed)
    scaler = Standardizer().fit(X_train)  # training statistics only
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def train_all(epochs, batch_size, seed):
    X_train, X_test, y_train, y_test = load_data(seed)
    fastnn.seed(seed)
    initial = {k: v.copy() for k, v in make_model().state_dict().items()}
    results = {}
    for name, (cls, kwargs) in OPTIMIZERS.items():
        model = make_model()
        model.load_state_dict(initial)  # the same starting point for every optimizer
        fastnn.seed(seed + 1)  # and the same sequence of shuffled batches
        trainer = fastnn.Trainer(model, CrossEntropyLoss(), cls(model.parameters(), **kwargs))
        start = time.perf_counter()
        history = trainer.fit(
            X_train,
            y_train,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=(X_test, y_test),
            verbose=0,
        )
        seconds = time.perf_counter() - start
        final = trainer.evaluate(X_train, y_train)
        test = trainer.evaluate(X_test, y_test)
        results[name] = dict(
            kwargs=kwargs,
            loss=history["loss"],
            val_accuracy=history["val_accuracy"],
            train_loss=final["loss"],
            train_accuracy=final["accuracy"],
            test_accuracy=test["accuracy"],
            seconds=seconds,
        )
    return results, (len(y_train), len(y_test))


def plot(results, path, epochs, batch_size, sizes):
    """Small multiples: one panel per optimizer, its training-loss curve in colour over
    the other nine in grey (several pairs, e.g. momentum and Nesterov, nearly coincide
    and would hide each other on one axis); the final test accuracy in each title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10").colors
    ncols = 5
    nrows = -(-len(results) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(3.3 * ncols, 3.2 * nrows + 0.6),
        sharex=True,
        sharey=True,
        constrained_layout=True,
    )
    ep = np.arange(1, epochs + 1)
    for ax, (name, r), color in zip(axes.flat, results.items(), colors):
        for other, o in results.items():
            if other != name:
                ax.plot(ep, o["loss"], color="0.8", lw=1)
        ax.plot(ep, r["loss"], color=color, lw=2.5)
        lr = r["kwargs"]["lr"]
        ax.set_title(
            f"{name}, lr={lr:g}\nloss {r['train_loss']:.4f}, "
            f"test acc {100 * r['test_accuracy']:.1f}%",
            fontsize=10,
        )
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.35)
        ax.set_xlim(1, epochs)
    for ax in axes.flat[len(results) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("training loss (log)")
    fig.suptitle(
        f"One 64-64-10 ReLU MLP on the UCI digits ({sizes[0]} train / {sizes[1]} "
        f"test), the same initial weights and batches (size {batch_size}) for "
        "every optimizer; grey: the other optimizers",
        fontsize=12,
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_table(results):
    rows = [
        (
            name,
            f"{r['kwargs']['lr']:g}",
            f"{r['train_loss']:.4f}",
            f"{100 * r['train_accuracy']:.1f}%",
            f"{100 * r['test_accuracy']:.1f}%",
            f"{r['seconds']:.2f}",
        )
        for name, r in results.items()
    ]
    headers = ("optimizer", "lr", "final train loss", "train acc", "test acc", "fit s")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="optimizers.png", help="PNG file for the figure")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    results, sizes = train_all(args.epochs, args.batch_size, args.seed)
    plot(results, args.out, args.epochs, args.batch_size, sizes)
    print_table(results)
    print(f"\nfigure: {args.out}  (total {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
