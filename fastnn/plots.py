"""Pictures of a training run (matplotlib, the optional `plot` extra)."""

import numpy as np


class PlotsUnavailable(ImportError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable("plots need matplotlib: pip install 'fastnn[plot]'") from None
    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history, path, title="Learning curves"):
    """Train and validation loss (left) and metrics (right) per epoch, with the
    learning rate on a second axis of the loss panel; saved as an image at path."""
    plt = _pyplot()
    h = history.history if hasattr(history, "history") else history
    epochs = np.arange(1, len(h["loss"]) + 1)
    metrics = [
        k
        for k in h
        if not k.startswith("val_") and k not in ("loss", "lr", "epoch_time", "grad_norm")
    ]
    fig, axes = plt.subplots(
        1, 2 if metrics else 1, figsize=(11 if metrics else 6, 4), squeeze=False
    )
    ax = axes[0, 0]
    ax.plot(epochs, h["loss"], label="train loss")
    if "val_loss" in h:
        ax.plot(epochs, h["val_loss"], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if min(h["loss"]) > 0 else "linear")
    lines, labels = ax.get_legend_handles_labels()
    if "lr" in h and len(set(h["lr"])) > 1:  # a schedule: show it
        lr_ax = ax.twinx()
        lines += lr_ax.plot(epochs, h["lr"], color="gray", linestyle=":", label="lr")
        labels.append("lr")
        lr_ax.set_ylabel("learning rate")
    ax.legend(lines, labels, loc="upper right")
    if metrics:
        mx = axes[0, 1]
        for m in metrics:
            mx.plot(epochs, h[m], label=f"train {m}")
            if f"val_{m}" in h:
                mx.plot(epochs, h[f"val_{m}"], label=f"validation {m}")
        mx.set_xlabel("epoch")
        mx.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion_matrix(y_true, y_pred, n_classes):
    """(n_classes, n_classes) counts: rows are true classes, columns predictions."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def plot_confusion_matrix(matrix, path, class_names=None, title="Confusion matrix (test)"):
    """The matrix as an annotated heat map saved at path."""
    plt = _pyplot()
    k = matrix.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), names, rotation=45 if k > 10 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() or 1
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if matrix[i, j] > top / 2 else "black",
            )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
