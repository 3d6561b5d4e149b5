"""A character-level LSTM language model trained on fastnn's own documentation.

The text is every docstring of the installed fastnn package (modules, classes,
functions), so the example needs nothing to download. The model reads a window of
`--window` characters and predicts the next one:

    Sequential(Embedding(vocabulary, 32), LSTM(32, 128, batch_first=True,
               return_sequences=False), Dense(128, vocabulary))

trained with Adam and gradient-norm clipping on the first 90% of the text; it prints
the next-character accuracy on the last 10% (against always guessing the most common
character) and a sample drawn from the model.

    python examples/char_lstm.py [--epochs 4] [--window 32] [--hidden 128]
"""

import argparse
import importlib
import inspect
import pkgutil
import time

import numpy as np

import fastnn
from fastnn.layers import LSTM, Dense, Embedding


def docstring_text():
    """All docstrings of the fastnn package (modules whose optional dependencies are
    installed), in a fixed order, joined by blank lines."""
    docs, seen = [], set()
    for info in sorted(pkgutil.walk_packages(fastnn.__path__, "fastnn."), key=lambda i: i.name):
        if info.name.endswith("__main__") or ".bench." in info.name:
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # a module for an optional dependency that is not installed
            continue
        for obj in [module] + [v for _, v in sorted(vars(module).items())]:
            if getattr(obj, "__module__", info.name) != info.name and obj is not module:
                continue
            doc = inspect.getdoc(obj)
            if doc and id(obj) not in seen:
                seen.add(id(obj))
                docs.append(doc)
    return "\n\n".join(docs)


def windows(codes, window, stride):
    """Inputs (n, window) of character codes and the character after each window."""
    starts = np.arange(0, len(codes) - window, stride)
    X = codes[starts[:, None] + np.arange(window)]
    return X, codes[starts + window]


def build(vocab, hidden, embed=32):
    return fastnn.Sequential(
        Embedding(vocab, embed),
        LSTM(embed, hidden, batch_first=True, return_sequences=False),
        Dense(hidden, vocab),
    )


def sample(model, chars, seed_text, length, window, rng, temperature=0.7):
    """Text continued from seed_text one character at a time."""
    index = {c: i for i, c in enumerate(chars)}
    codes = [index.get(c, 0) for c in seed_text[-window:]]
    out = []
    for _ in range(length):
        logits = model.predict(np.array([codes[-window:]], np.float32))[0] / temperature
        p = np.exp(logits - logits.max())
        codes.append(int(rng.choice(len(chars), p=p / p.sum())))
        out.append(chars[codes[-1]])
    return "".join(out)


def train(
    epochs=4,
    window=32,
    hidden=128,
    stride=3,
    lr=3e-3,
    batch_size=128,
    max_chars=None,
    seed=0,
    verbose=1,
):
    """Train on the docstrings; returns (model, chars, test accuracy, baseline accuracy,
    history)."""
    fastnn.seed(seed)
    text = docstring_text()[:max_chars]
    chars = sorted(set(text))
    codes = np.array([chars.index(c) for c in text], np.int64)
    split = int(0.9 * len(codes))
    X, y = windows(codes[:split], window, stride)
    X_test, y_test = windows(codes[split:], window, window)
    model = build(len(chars), hidden)
    trainer = fastnn.Trainer(
        model,
        fastnn.losses.CrossEntropyLoss(),
        fastnn.optim.Adam(model.parameters(), lr=lr),
        clip_grad_norm=1.0,
    )
    history = trainer.fit(
        X.astype(np.float32), y, epochs=epochs, batch_size=batch_size, verbose=verbose
    )
    acc = trainer.evaluate(X_test.astype(np.float32), y_test)["accuracy"]
    baseline = np.mean(y_test == np.bincount(y).argmax())
    return model, chars, acc, baseline, history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    model, chars, acc, baseline, _ = train(args.epochs, args.window, args.hidden)
    print(
        f"next-character accuracy on held-out docstrings: {acc:.3f} (most common "
        f"character: {baseline:.3f}); {time.perf_counter() - t0:.0f} s"
    )
    seed_text = "Train the model on the CPU with "
    print(seed_text + sample(model, chars, seed_text, 200, args.window, np.random.default_rng(0)))


if __name__ == "__main__":
    main()
