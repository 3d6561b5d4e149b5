"""`fastnn train`: train an MLP on the embedded digits or a CSV/NPZ file, following the
usual procedure: split off a test set, standardise with statistics of the
training part only, shuffle every epoch, watch train and validation figures, report
the test figures, save the model (with its standardisation) and the history."""

import contextlib
import json
import math
import os
import sys
import time

import numpy as np

from . import images
from .common import (
    CommandError,
    fraction,
    non_negative_float,
    open_fraction,
    positive_int,
    positive_ints,
)

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam")
SCHEDULES = ("none", "cosine", "step", "plateau")


def add_arguments(p):
    """Add fastnn train's options to the argparse parser p."""
    d = p.add_argument_group("data")
    d.add_argument(
        "--data",
        metavar="FILE",
        help="a CSV file with a header row, or an NPZ file with arrays X and y "
        "(default: the embedded UCI handwritten digits)",
    )
    d.add_argument(
        "--target", metavar="COLUMN", help="the CSV column to predict (default: the last column)"
    )
    d.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="inferred from the target when auto: class names or few distinct "
        "integers make a classification task",
    )
    d.add_argument(
        "--test-split",
        type=open_fraction,
        default=0.25,
        help="fraction of the samples held out as the test set",
    )
    d.add_argument(
        "--val-split",
        type=fraction,
        default=0.1,
        help="fraction of the training samples used for validation",
    )
    m = p.add_argument_group("model")
    m.add_argument(
        "--arch",
        choices=("auto", "mlp", "cnn"),
        default="auto",
        help="mlp (--hidden layers), or cnn: a small convolutional network for "
        "images (NPZ X of shape (N, C, H, W) or (N, H, W)); auto picks cnn "
        "for images",
    )
    m.add_argument(
        "--hidden",
        type=positive_ints,
        default=(256, 256),
        metavar="N,N,...",
        help="sizes of the hidden layers",
    )
    m.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default="relu",
        help="activation after each hidden layer",
    )
    m.add_argument("--batch-norm", action="store_true", help="BatchNorm1d after each hidden layer")
    m.add_argument(
        "--dropout",
        type=fraction,
        default=0.3,
        metavar="P",
        help="dropout probability after each hidden layer",
    )
    o = p.add_argument_group("optimisation")
    o.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="adam",
        help="optimizer (PyTorch's defaults besides --lr)",
    )
    o.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    o.add_argument(
        "--momentum", type=non_negative_float, default=0.9, help="momentum for sgd and rmsprop"
    )
    o.add_argument(
        "--weight-decay",
        type=non_negative_float,
        default=0.0,
        help="weight decay (decoupled for adamw, L2 in the gradient otherwise)",
    )
    o.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="none",
        help="learning-rate schedule: cosine annealing over the epochs, step "
        "decay (x0.1 every third of the epochs), or reduce on plateau",
    )
    o.add_argument("--epochs", type=positive_int, default=40, help="number of epochs")
    o.add_argument("--batch-size", type=positive_int, default=64, help="mini-batch size")
    o.add_argument(
        "--drop-last",
        action="store_true",
        help="drop each epoch's last partial batch (by default it is trained "
        "on; a single sample left over with --batch-norm joins the batch "
        "before it)",
    )
    o.add_argument(
        "--early-stopping",
        type=positive_int,
        metavar="PATIENCE",
        help="stop when the validation loss has not improved for PATIENCE "
        "epochs, keeping the best weights",
    )
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, help="seed for init, splits, shuffling, dropout")
    r.add_argument("--threads", type=positive_int, help="threads (default: all CPUs)")
    r.add_argument(
        "--out",
        metavar="DIR",
        help="write model.safetensors, history.csv, metrics.json and plots here",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar, one line per epoch")


def run(args):
    """Under mpiexec every rank trains (fastnn.distributed); rank 0 alone prints and
    writes the output files."""
    from fastnn import distributed

    if distributed.is_main_process():
        return _run(args)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        return _run(args)


def _run(args):
    import fastnn
    from fastnn import callbacks, datasets, preprocessing

    if args.threads:
        fastnn.set_num_threads(args.threads)
    if args.seed < 0:
        raise CommandError(f"--seed must be >= 0, got {args.seed}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise CommandError(f"--lr must be a positive number, got {args.lr}")
    if args.schedule == "plateau" and not args.val_split:
        raise CommandError("--schedule plateau needs a validation split (--val-split > 0)")
    fastnn.seed(args.seed)
    if args.out:
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as e:
            raise CommandError(f"--out {args.out}: cannot create the directory ({e})") from None

    data = _load(args, datasets)
    cnn = args.arch == "cnn" or (args.arch == "auto" and data["X"].ndim > 2)
    data["X"] = (
        images.as_images(data["X"], args.arch, data["source"])
        if cnn
        else data["X"].reshape(len(data["X"]), -1)
    )
    X, y, task = data["X"], data["y"], data["task"]
    stratify = y if task == "classification" and _can_stratify(y, args.test_split) else None
    try:
        X_tr, X_te, y_tr, y_te = preprocessing.train_test_split(
            X, y, test_size=args.test_split, stratify=stratify, seed=args.seed
        )
    except ValueError as e:  # too few samples for the split
        raise CommandError(f"{data['source']}: {e}") from None
    scaler = (images.ChannelScaler() if cnn else preprocessing.Standardizer()).fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    _print_data(data, X_tr, X_te, y_tr)
    target_scaler = None
    if task == "regression":  # the network learns standardised targets; the saved
        y2 = y_tr.reshape(len(y_tr), -1)  # model maps its outputs back to target units
        target_scaler = preprocessing.Standardizer().fit(y2)
        y_tr = target_scaler.transform(y2).reshape(y_tr.shape)

    n_out = len(data["classes"]) if task == "classification" else (1 if y.ndim == 1 else y.shape[1])
    body = (
        images.small_cnn(fastnn, X.shape[1:], n_out, args)
        if cnn
        else _mlp(fastnn, X.shape[1], n_out, args)
    )
    print()
    body.summary(input_features=X.shape[1:] if cnn else None, print_fn=print)
    loss = fastnn.losses.CrossEntropyLoss() if task == "classification" else fastnn.losses.MSELoss()
    optimizer = _optimizer(fastnn, body, args)
    scheduler = _schedule(fastnn, optimizer, args)
    guard = callbacks.TerminateOnNaN()  # divergence: rolled back, reported, exit status 1
    cbs = [guard]
    if args.early_stopping:
        cbs.append(callbacks.EarlyStopping("val_loss", patience=args.early_stopping))
    if args.out:
        cbs.append(callbacks.CSVLogger(os.path.join(args.out, "history.csv")))
    metrics = ("accuracy",) if task == "classification" else ("mae",)
    trainer = fastnn.Trainer(
        body, loss, optimizer, scheduler=scheduler, metrics=metrics, callbacks=cbs
    )
    print(
        f"\nTraining: {args.optimizer} lr={args.lr}, batch {args.batch_size}, "
        f"up to {args.epochs} epochs, {fastnn.get_num_threads()} threads"
    )
    start = time.perf_counter()
    try:
        history = trainer.fit(
            X_tr,
            y_tr,
            epochs=args.epochs,
            batch_size=args.batch_size,
            drop_last=args.drop_last,
            validation_split=args.val_split,
            verbose=2 if args.quiet else 1,
        )
    except ValueError as e:  # the data is checked already: what is left is its size
        raise CommandError(str(e)) from None
    seconds = time.perf_counter() - start
    layers = [scaler.as_layer(), *body.layers]
    if target_scaler is None:
        test = trainer.evaluate(X_te, y_te)
    else:
        layers.append(target_scaler.as_layer(inverse=True))
        pred = fastnn.Sequential(*layers[1:]).predict(X_te).reshape(y_te.shape)
        test = {
            "loss": float(np.mean((pred - y_te) ** 2)),  # MSE, the training loss
            "mae": float(np.mean(np.abs(pred - y_te))),
        }
    print(
        f"\nTrained {len(history)} epochs in {seconds:.1f} s"
        + (" (interrupted)" if trainer.interrupted else "")
    )
    units = (
        ""
        if target_scaler is None
        else " (in target units; training figures above are on standardised targets)"
    )
    print("Test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()) + units)
    if args.out and fastnn.distributed.is_main_process():
        model = fastnn.Sequential(*layers)
        _write_outputs(
            args.out,
            model,
            history,
            test,
            data,
            model.predict(scaler.inverse_transform(X_te)),
            y_te,
            seconds,
        )
    if guard.stopped is not None:
        print(f"fastnn train: {guard.message}", file=sys.stderr)
        return 1
    return 0


def _load(args, datasets):
    """{'X', 'y' (int labels or float targets), 'task', 'classes', 'source', ...}."""
    if args.data is None:
        if args.target is not None:
            raise CommandError("--target needs --data (the embedded digits have no columns)")
        X, y = datasets.load_digits()
        names = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
        source, target = "embedded UCI handwritten digits (8x8 images)", "digit"
    else:
        try:
            X, y, names, target = datasets.load_table(args.data, target=args.target)
        except datasets.DataError as e:
            raise CommandError(str(e)) from None
        source = args.data
    task = datasets.infer_task(y) if args.task == "auto" else args.task
    classes = None
    if task == "classification":
        labels, classes = datasets.encode_labels(y)
        if len(classes) < 2:
            raise CommandError(f"the target {target!r} has a single class; nothing to learn")
        y = labels
    else:
        if y.dtype.kind not in "biuf":
            raise CommandError(f"the target {target!r} is not numeric: use --task classification")
        y = y.astype(np.float32)
    return {
        "X": X.astype(np.float64),
        "y": y,
        "task": task,
        "classes": classes,
        "feature_names": list(names),
        "target": target,
        "source": source,
    }


def _can_stratify(y, test_size):
    counts = np.bincount(y)
    return counts[counts > 0].min() >= 2 and int(np.ceil(test_size * len(y))) >= len(counts)


def _print_data(data, X_tr, X_te, y_tr):
    print(f"Data: {data['source']}")
    n = X_tr.shape[0] + X_te.shape[0]
    what = f"images {X_tr.shape[1:]}" if X_tr.ndim > 2 else f"{X_tr.shape[1]} features"
    print(f"  {n} samples x {what}; target {data['target']!r}, {data['task']}")
    if data["task"] == "classification":
        counts = np.bincount(y_tr, minlength=len(data["classes"]))
        shown = ", ".join(f"{c}: {k}" for c, k in zip(data["classes"][:12], counts[:12]))
        more = ", ..." if len(counts) > 12 else ""
        print(f"  {len(data['classes'])} classes; training counts {shown}{more}")
    print(
        f"  split: {X_tr.shape[0]} train (of which a validation part), {X_te.shape[0]} test; "
        "features standardised with training statistics"
    )


def _mlp(fastnn, n_in, n_out, args):
    act = {
        "relu": fastnn.ReLU,
        "leaky_relu": fastnn.LeakyReLU,
        "elu": fastnn.ELU,
        "gelu": fastnn.GELU,
        "tanh": fastnn.Tanh,
        "sigmoid": fastnn.Sigmoid,
    }[args.activation]
    init = (
        "kaiming_uniform"
        if args.activation in ("relu", "leaky_relu", "elu", "gelu")
        else "xavier_uniform"
    )
    layers, width = [], n_in
    for h in args.hidden:
        layers.append(fastnn.Dense(width, h, init=init))
        if args.batch_norm:
            layers.append(fastnn.BatchNorm1d(h))
        layers.append(act())
        if args.dropout > 0:
            layers.append(fastnn.Dropout(args.dropout))
        width = h
    layers.append(fastnn.Dense(width, n_out, init="xavier_uniform"))
    return fastnn.Sequential(*layers)


def _optimizer(fastnn, model, args):
    o, p, lr, wd = fastnn.optim, model.parameters(), args.lr, args.weight_decay
    if args.optimizer == "sgd":
        return o.SGD(p, lr=lr, momentum=args.momentum, weight_decay=wd)
    if args.optimizer == "rmsprop":
        return o.RMSprop(p, lr=lr, momentum=args.momentum, weight_decay=wd)
    cls = {
        "adam": o.Adam,
        "adamw": o.AdamW,
        "adagrad": o.Adagrad,
        "adadelta": o.Adadelta,
        "adamax": o.Adamax,
        "nadam": o.NAdam,
    }[args.optimizer]
    return cls(p, lr=lr, weight_decay=wd)


def _schedule(fastnn, optimizer, args):
    s = fastnn.schedules
    if args.schedule == "cosine":
        return s.CosineAnnealing(optimizer, T_max=args.epochs)
    if args.schedule == "step":
        return s.StepDecay(optimizer, step_size=max(1, args.epochs // 3), gamma=0.1)
    if args.schedule == "plateau":
        if not args.val_split:
            raise CommandError("--schedule plateau needs a validation split (--val-split > 0)")
        return s.ReduceOnPlateau(optimizer, "val_loss", factor=0.5, patience=3)
    return None


def _write_outputs(out, model, history, test, data, pred, y_te, seconds):
    import fastnn
    from fastnn import plots

    meta = {
        "task": data["task"],
        "feature_names": data["feature_names"],
        "target": data["target"],
        "classes": None,
    }
    if data["classes"] is not None:
        meta.update(fastnn.io.class_metadata(data["classes"]))
    path = os.path.join(out, "model.safetensors")
    fastnn.save(model, path, metadata=meta)
    written = [path, os.path.join(out, "history.csv")]
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"test": test, "epochs": len(history), "seconds": seconds}, f, indent=2)
    written.append(os.path.join(out, "metrics.json"))
    try:
        if len(history):  # (none when the first epoch diverged)
            plots.learning_curves(history, os.path.join(out, "learning_curves.png"))
            written.append(os.path.join(out, "learning_curves.png"))
        if data["task"] == "classification":
            k = len(data["classes"])
            cm = plots.confusion_matrix(y_te, pred.argmax(axis=1), k)
            plots.plot_confusion_matrix(
                cm, os.path.join(out, "confusion_matrix.png"), data["classes"]
            )
            written.append(os.path.join(out, "confusion_matrix.png"))
    except plots.PlotsUnavailable as e:
        print(f"No plots: {e}")
    print("Wrote " + ", ".join(written))
