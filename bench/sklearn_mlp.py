"""Fit time of fastnn.sklearn.MLPClassifier against fastnn's own Trainer on the same
network, and against sklearn.neural_network.MLPClassifier, each run in its own
process; prints seconds per fit and the ratios.

    python bench/sklearn_mlp.py [--data digits|synthetic|both] [--epochs N] [--repeats R]
                                [--float32] [--threads T]

Same network everywhere: one hidden layer of 100 ReLU units (scikit-learn's default),
Adam with lr 1e-3, mini-batches of 200, a fixed number of epochs (tol=0 and
n_iter_no_change > epochs, so nobody stops early). digits: fastnn's embedded UCI
digits (1797 x 64, standardised); synthetic: make_classification, 100 000 x 100, 10
classes. float64 data (scikit-learn's precision) unless --float32. --threads T
runs every library on T threads (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS for
scikit-learn's BLAS, fastnn.set_num_threads for fastnn); default: all cores.
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, os, sys, time, warnings
import numpy as np
which, data, epochs, float32 = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
if data == "digits":
    import fastnn
    X, y = fastnn.datasets.load_digits(dtype=np.float64)
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
else:
    from sklearn.datasets import make_classification
    X, y = make_classification(100_000, 100, n_informative=40, n_classes=10, random_state=0)
X = X.astype(np.float32 if float32 else np.float64)
kw = dict(hidden_layer_sizes=(100,), max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
          batch_size=200, learning_rate_init=1e-3, random_state=0)
warnings.simplefilter("ignore")
import fastnn  # every import before the clock starts
if os.environ.get("OMP_NUM_THREADS"):
    fastnn.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
if which == "sklearn":
    from sklearn.neural_network import MLPClassifier
elif which == "fastnn.sklearn":
    from fastnn.sklearn import MLPClassifier
t = time.perf_counter()
if which in ("sklearn", "fastnn.sklearn"):
    MLPClassifier(**kw).fit(X, y)
else:  # fastnn's Trainer, the same network
    fastnn.seed(0)
    model = fastnn.Sequential(fastnn.Dense(X.shape[1], 100, dtype=X.dtype), fastnn.ReLU(),
                              fastnn.Dense(100, int(y.max()) + 1, dtype=X.dtype))
    trainer = fastnn.Trainer(model, fastnn.losses.CrossEntropyLoss(),
                             fastnn.optim.Adam(model.parameters(), lr=1e-3), metrics=())
    trainer.fit(X, y, epochs=epochs, batch_size=200, verbose=0)
print(json.dumps(time.perf_counter() - t))
"""

RUNNERS = ("fastnn.Trainer", "fastnn.sklearn", "sklearn")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("digits", "synthetic", "both"), default="both")
    p.add_argument("--epochs", type=int)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--float32", action="store_true")
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    sets = ("digits", "synthetic") if args.data == "both" else (args.data,)
    for data in sets:
        epochs = args.epochs or (50 if data == "digits" else 5)
        best = {}
        for _ in range(args.repeats):  # interleaved: load drifts hit every runner alike
            for which in RUNNERS:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        WORKER,
                        which,
                        data,
                        str(epochs),
                        "1" if args.float32 else "0",
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                ).stdout
                best[which] = min(best.get(which, float("inf")), json.loads(out))
        dt = "float32" if args.float32 else "float64"
        threads = f", {args.threads} thread(s)" if args.threads else ""
        print(f"{data}, {epochs} epochs, {dt}{threads} (best of {args.repeats}):")
        for which in RUNNERS:
            print(f"  {which:16s} {best[which]:8.3f} s")
        print(
            f"  fastnn.sklearn / Trainer: {best['fastnn.sklearn'] / best['fastnn.Trainer']:.3f}"
            f"   sklearn / fastnn.sklearn: {best['sklearn'] / best['fastnn.sklearn']:.2f}x"
        )


if __name__ == "__main__":
    main()
