"""Greedy layer-wise autoencoder pre-training on the UCI digits with few labels.

Only `--labels` training images (default 50: five per digit) keep their label; the rest
of the training split is used unlabelled. Two networks with the same architecture,
64 -> 128 -> 64 -> 10 (tanh), are trained on the labelled images for the same number of
epochs:

- from random weights;
- after pre-training the two hidden layers, bottom up, as (denoising) autoencoders of the
  unlabelled images, then fine-tuning with the pre-trained layers frozen for the first
  `--freeze` epochs (only the classifier on top learns) and unfrozen afterwards.

Each is repeated over several seeds (different labelled subsets and initial weights) and
the script prints the test accuracy of every run and the means.

    python examples/pretraining.py [--labels 50] [--seeds 5] [--epochs 60] [--freeze 20]

What it shows (5 seeds): with 50 labels, pre-training raises the mean test accuracy from
0.829 to 0.840 and wins on every seed; with 200 labels the gain is gone (0.918 vs 0.921).
The effect is real but small for a shallow tanh network trained with Adam; it grows for
deeper sigmoid stacks, which train worse from random weights.
"""

import argparse

import numpy as np

import fastnn
from fastnn.datasets import load_digits
from fastnn.losses import CrossEntropyLoss
from fastnn.preprocessing import Standardizer, train_test_split
from fastnn.pretrain import FreezeLayers, pretrain_autoencoders


def labelled_subset(y, per_class, gen):
    """Indices of `per_class` samples of every class."""
    return np.concatenate(
        [gen.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    )


def build():
    stack = [fastnn.Dense(64, 128), fastnn.Tanh(), fastnn.Dense(128, 64), fastnn.Tanh()]
    return stack, fastnn.Sequential(*stack, fastnn.Dense(64, 10))


def run(seed, X, y, X_test, y_test, labels, epochs, freeze, pretrain):
    fastnn.seed(seed)
    idx = labelled_subset(y, labels // 10, np.random.default_rng(seed))
    stack, model = build()
    callbacks = []
    if pretrain:
        pretrain_autoencoders(stack, X, epochs=30, batch_size=64, lr=1e-3, noise=0.2)
        callbacks.append(FreezeLayers(stack, epochs=freeze))
    trainer = fastnn.Trainer(
        model,
        CrossEntropyLoss(),
        fastnn.optim.Adam(model.parameters(), lr=1e-3),
        callbacks=callbacks,
    )
    trainer.fit(X[idx], y[idx], epochs=epochs, batch_size=16, verbose=0)
    return trainer.evaluate(X_test, y_test)["accuracy"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--freeze", type=int, default=20)
    args = parser.parse_args(argv)
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, seed=0)
    scaler = Standardizer().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    print(f"{args.labels} labelled of {len(X_train)} training images, {len(X_test)} test images")
    results = {}
    for pretrain in (False, True):
        name = "pre-trained + fine-tuned" if pretrain else "random init"
        accs = [
            run(
                s, X_train, y_train, X_test, y_test, args.labels, args.epochs, args.freeze, pretrain
            )
            for s in range(args.seeds)
        ]
        results[name] = accs
        print(
            f"{name:>26}: " + "  ".join(f"{a:.3f}" for a in accs) + f"   mean {np.mean(accs):.3f}"
        )
    return results


if __name__ == "__main__":
    main()
