"""scikit-learn estimators backed by fastnn: `MLPClassifier` and `MLPRegressor`.

They take scikit-learn's own parameter names and defaults (those of
`sklearn.neural_network.MLPClassifier` / `MLPRegressor`), plus fastnn's
(`batch_norm`, `dropout`, `optimizer_kwargs`, `n_threads`, `dtype`), and train with
fastnn's Trainer and C kernels. They work in Pipeline, GridSearchCV and
cross_val_score, pickle as scikit-learn estimators do (the network travels inside the
pickle as safetensors bytes, never as pickled fastnn objects), and pass
`sklearn.utils.estimator_checks.check_estimator`.

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from fastnn.sklearn import MLPClassifier
    >>> clf = make_pipeline(StandardScaler(), MLPClassifier(random_state=0))
    >>> clf.fit(X_train, y_train).score(X_test, y_test)

Differences from scikit-learn's MLP, all by design:
- solver: 'adam' and 'sgd' as scikit-learn, and any other fastnn optimizer by name
  ('adamw', 'rmsprop', 'adagrad', 'adadelta', 'adamax', 'nadam'); 'lbfgs' (a
  full-batch quasi-Newton method) is not offered.
- weights are initialised as torch.nn.Linear does (fastnn's Dense), not Glorot;
- a binary classifier has two softmax outputs (the same model as one logistic output);
- the regressor's `loss_curve_` is the mean squared error (scikit-learn reports half
  of it); `alpha` adds alpha / (2 * batch_size) * ||W||^2 per batch as scikit-learn
  does, on the weights of every Dense layer (not the biases).
Requires scikit-learn: `pip install "fastnn[sklearn]"`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import (
        _check_partial_fit_first_call,
        check_classification_targets,
        type_of_target,
    )
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as e:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "fastnn.sklearn needs scikit-learn >= 1.6: pip install 'fastnn[sklearn]'"
    ) from e

from . import layers, losses, optim, rng
from .callbacks import Callback
from .io import load, save
from .regularizers import L2
from .sequential import Sequential
from .threads import get_num_threads, set_num_threads
from .trainer import Trainer

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {
    "identity": layers.Identity,
    "logistic": layers.Sigmoid,
    "tanh": layers.Tanh,
    "relu": layers.ReLU,
    "leaky_relu": layers.LeakyReLU,
    "elu": layers.ELU,
    "gelu": layers.GELU,
}
_SOLVERS = {
    "adam": optim.Adam,
    "sgd": optim.SGD,
    "adamw": optim.AdamW,
    "rmsprop": optim.RMSprop,
    "adagrad": optim.Adagrad,
    "adadelta": optim.Adadelta,
    "adamax": optim.Adamax,
    "nadam": optim.NAdam,
}


@contextlib.contextmanager
def _threads(n):
    """Run fastnn's kernels on n threads inside the block (None: leave as is)."""
    if n is None:
        yield
        return
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


class _BatchLoss(losses.Loss):
    """The estimators' training loss, as scikit-learn defines it per mini-batch: the
    inner loss (a weighted mean with sample weights) plus alpha / 2 * ||W||^2 divided
    by the batch's summed sample weights (its size without weights). This sets the
    shared L2 penalty's coefficient before the Trainer adds the penalty. labels: the
    targets are class indices (which the Trainer hands over as floats)."""

    def __init__(self, inner, labels, penalty, alpha):
        super().__init__(inner.reduction)
        self.inner, self.labels = inner, labels
        self.penalty, self.alpha = penalty, alpha

    def forward(self, pred, target, sample_weight=None):
        """The batch loss; sets the L2 coefficient from the batch's summed weights first."""
        if self.labels:
            target = target.astype(np.int64)
        if self.penalty is not None:
            total = float(len(target)) if sample_weight is None else float(sample_weight.sum())
            self.penalty.l2 = self.alpha / (2.0 * total)
        return self.inner(pred, target, sample_weight=sample_weight)

    def _backward(self):
        return self.inner._backward()


class _Convergence(Callback):
    """scikit-learn's stopping rule, run after each epoch: no improvement of the
    training loss (or, with early_stopping, of the validation score) by `tol` for
    more than n_iter_no_change epochs ends the fit; with learning_rate='adaptive' it
    divides the learning rate by 5 first, down to 1e-6."""

    def __init__(self, est, val):
        self.est, self.val = est, val

    def on_batch_end(self, trainer, batch, logs):
        """Counts the samples seen (t_); applies invscaling to the learning rate."""
        est = self.est
        est.t_ += logs["size"]
        if est.learning_rate == "invscaling" and est.solver == "sgd":
            trainer.optimizer.lr = est.learning_rate_init / (est.t_ + 1) ** est.power_t

    def on_epoch_end(self, trainer, epoch, logs):
        """Records loss_curve_ (and the validation score); stops or divides the learning
        rate as scikit-learn does."""
        est = self.est
        est.loss_curve_.append(float(logs["loss"]))
        if est.verbose:
            print(f"Iteration {len(est.loss_curve_)}, loss = {logs['loss']:.8f}")
        if self.val is not None:
            score = est._score_unchecked(*self.val)
            est.validation_scores_.append(score)
            worse = score < est.best_validation_score_ + est.tol
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_state = {k: v.copy() for k, v in est.model_.state_dict().items()}
        else:
            worse = est.loss_curve_[-1] > est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, est.loss_curve_[-1])
        est._no_improvement_count = est._no_improvement_count + 1 if worse else 0
        if est._no_improvement_count > est.n_iter_no_change and est._stop_allowed:
            if est.learning_rate == "adaptive" and trainer.optimizer.lr > 1e-6:
                trainer.optimizer.lr = trainer.optimizer.lr / 5.0
                est._no_improvement_count = 0
            else:
                est._converged = True
                trainer.stop_training = True


class _BaseMLP(BaseEstimator):
    """Shared by MLPClassifier and MLPRegressor (see the module docstring)."""

    _loss_name = ""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        batch_norm=False,
        dropout=0.0,
        optimizer_kwargs=None,
        n_threads=None,
        dtype=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.optimizer_kwargs = optimizer_kwargs
        self.n_threads = n_threads
        self.dtype = dtype

    # -- checks ----------------------------------------------------------------------
    def _validate_hyperparameters(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, (int, np.integer)) else list(sizes)
        if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        rules = [
            (self.activation in _ACTIVATIONS, "activation", sorted(_ACTIVATIONS)),
            (
                self.solver in _SOLVERS,
                "solver",
                sorted(_SOLVERS) + ["(lbfgs is not offered: fastnn trains with mini-batches)"],
            ),
            (
                self.learning_rate in ("constant", "invscaling", "adaptive"),
                "learning_rate",
                ["constant", "invscaling", "adaptive"],
            ),
            (self.alpha >= 0, "alpha", ">= 0"),
            (self.learning_rate_init > 0, "learning_rate_init", "> 0"),
            (
                isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 1,
                "max_iter",
                "an integer >= 1",
            ),
            (self.tol >= 0, "tol", ">= 0"),
            (
                isinstance(self.n_iter_no_change, (int, np.integer)) and self.n_iter_no_change >= 1,
                "n_iter_no_change",
                "an integer >= 1",
            ),
            (0 < self.validation_fraction < 1, "validation_fraction", "in (0, 1)"),
            (0 <= self.beta_1 < 1, "beta_1", "in [0, 1)"),
            (0 <= self.beta_2 < 1, "beta_2", "in [0, 1)"),
            (self.epsilon > 0, "epsilon", "> 0"),
            (0 <= self.momentum <= 1, "momentum", "in [0, 1]"),
            (0 <= self.dropout < 1, "dropout", "in [0, 1)"),
            (
                self.batch_size == "auto"
                or (
                    isinstance(self.batch_size, (int, np.integer))
                    and not isinstance(self.batch_size, bool)
                ),
                "batch_size",
                "'auto' or an integer",
            ),
            (
                self.dtype is None or np.dtype(self.dtype) in (np.float32, np.float64),
                "dtype",
                "None, 'float32' or 'float64'",
            ),
        ]
        for ok, name, expected in rules:
            if not ok:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be {expected}, got {getattr(self, name)!r}"
                )
        return sizes

    def _batch(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if not 1 <= self.batch_size <= n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is "
                "going to be clipped",
                stacklevel=3,
            )
        return int(np.clip(self.batch_size, 1, n))

    # -- the network -----------------------------------------------------------------
    def _build(self, n_in, n_out, batch, dtype):
        """A fresh Sequential: [Dense, (BatchNorm1d), activation, (Dropout)] per hidden
        layer, then Dense(n_out)."""
        sizes = self._validate_hyperparameters()
        # One L2 penalty shared by every Dense weight; _BatchLoss sets its coefficient.
        reg = self._penalty = L2(self.alpha / (2.0 * batch)) if self.alpha else None
        parts = []
        for h in sizes:
            parts.append(layers.Dense(n_in, h, dtype=dtype, regularizer=reg))
            if self.batch_norm:
                parts.append(layers.BatchNorm1d(h, dtype=dtype))
            parts.append(_ACTIVATIONS[self.activation]())
            if self.dropout:
                parts.append(layers.Dropout(self.dropout))
            n_in = h
        parts.append(layers.Dense(n_in, n_out, dtype=dtype, regularizer=reg))
        return Sequential(*parts)

    def _optimizer(self, model):
        kwargs = dict(self.optimizer_kwargs or {})
        kwargs.setdefault("lr", self.learning_rate_init)
        if self.solver in ("adam", "adamw", "adamax", "nadam"):
            kwargs.setdefault("betas", (self.beta_1, self.beta_2))
            kwargs.setdefault("eps", self.epsilon)
        elif self.solver == "sgd":
            kwargs.setdefault("momentum", self.momentum)
            kwargs.setdefault("nesterov", bool(self.nesterovs_momentum and self.momentum > 0))
        return _SOLVERS[self.solver](model.parameters(), **kwargs)

    # -- fitting ---------------------------------------------------------------------
    def _fit(self, X, y, sample_weight, incremental):
        first = not ((incremental or self.warm_start) and hasattr(self, "model_"))
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            dtype=(np.float64, np.float32),
            multi_output=True,
            y_numeric=self._loss_name == "mse",
        )
        targets, n_out = self._encode_targets(y, first)
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            keep = sw > 0  # zero weights: samples that count for nothing
            X, targets, sw = X[keep], targets[keep], sw[keep]
        if first:
            self._initialize(
                X.shape[1],
                n_out,
                X.shape[0],
                X.dtype if self.dtype is None else np.dtype(self.dtype),
            )
        elif self.model_[-1].out_features != n_out:
            raise ValueError(
                f"{type(self).__name__}: the new targets need {n_out} outputs, "
                f"the fitted network has {self.model_[-1].out_features}"
            )
        val = None
        if self.early_stopping and not incremental:
            split = train_test_split(
                X,
                targets,
                *(() if sw is None else (sw,)),
                random_state=self._split_seed,
                test_size=self.validation_fraction,
                stratify=targets if self._stratify() else None,
            )
            X, Xv, targets, tv = split[:4]
            sw = split[4] if sw is not None else None
            val = (Xv, self._decode_for_score(tv))
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self._best_state = None
        batch = self._batch(X.shape[0])
        with _threads(self.n_threads):
            self._train(
                X, targets, sw, batch, 1 if incremental else self.max_iter, val, incremental
            )
        if val is not None and self._best_state is not None:
            self.model_.load_state_dict(self._best_state)
        return self

    def _initialize(self, n_in, n_out, n, dtype):
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        rng.seed(seed)
        self._split_seed = seed
        self.model_ = self._build(n_in, n_out, self._batch(n), dtype)
        self.model_.train()
        self._trainer = None
        self.loss_curve_, self.t_, self.n_iter_ = [], 0, 0
        self.best_loss_, self._no_improvement_count = np.inf, 0
        self.n_layers_ = len(self._validate_hyperparameters()) + 2
        self.n_outputs_ = n_out

    def _train(self, X, targets, sw, batch, epochs, val, incremental):
        labels = self._loss_name == "cross_entropy" and not self._multilabel
        loss = _BatchLoss(self._make_loss(), labels, self._penalty, self.alpha)
        if self._trainer is None:
            self._trainer = Trainer(
                self.model_, loss, self._optimizer(self.model_), metrics=(), callbacks=()
            )
            self._trainer.classes_ = None  # the targets arrive encoded
        trainer = self._trainer
        trainer.loss = loss
        self._converged, self._stop_allowed = False, not incremental
        trainer.callbacks = [_Convergence(self, val)]
        before = trainer.epoch
        trainer.fit(
            X,
            targets,
            epochs=epochs,
            batch_size=batch,
            shuffle=self.shuffle,
            verbose=0,
            sample_weight=sw,
        )
        self.n_iter_ += trainer.epoch - before
        if not incremental and not self._converged:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                "reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _raw(self, X):
        """The network's outputs (n_samples, n_outputs) in eval mode, float64."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        with _threads(self.n_threads):
            out = self.model_.predict(X)
        return np.asarray(out, dtype=np.float64)

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and targets y for up to max_iter epochs
        (from scratch unless warm_start); sample_weight (n_samples,) weights each
        sample's loss (the batch loss is their weighted mean). Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    # -- pickling: the network as safetensors bytes ----------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_trainer", None)  # optimizer state is not kept: partial_fit restarts it
        if "model_" in state:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.safetensors")
                save(self.model_, path)
                with open(path, "rb") as f:
                    state["model_"] = f.read()
        return state

    def __setstate__(self, state):
        model = state.get("model_")
        if isinstance(model, bytes):
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.safetensors")
                with open(path, "wb") as f:
                    f.write(model)
                state["model_"] = load(path)
        state["_trainer"] = None
        self.__dict__.update(state)

    @property
    def coefs_(self):
        """The Dense weights as scikit-learn lays them out: (n_in, n_out) per layer."""
        check_is_fitted(self, "model_")
        return [m.weight.data.T.copy() for m in self.model_ if isinstance(m, layers.Dense)]

    @property
    def intercepts_(self):
        """The Dense biases, one (n_out,) vector per layer."""
        check_is_fitted(self, "model_")
        return [m.bias.data.copy() for m in self.model_ if isinstance(m, layers.Dense)]


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier (scikit-learn's API, fastnn's training).

    Softmax cross-entropy over `classes_` (any label type: integers, strings, ...);
    a 2-D 0/1 indicator y trains a multilabel classifier (one sigmoid per label, binary
    cross-entropy). Parameters are scikit-learn's MLPClassifier's (see the module
    docstring for the differences) plus:

    batch_norm: BatchNorm1d after each hidden Dense layer; dropout: Dropout probability
    after each hidden activation; optimizer_kwargs: extra arguments of the fastnn
    optimizer; n_threads: fastnn threads during fit and predict (None: as set);
    dtype: the network's float type; None (default) follows X as scikit-learn does
    (float32 X trains in float32, about twice as fast; anything else in float64).

    Attributes: classes_, loss_curve_ (training loss per epoch), n_iter_, t_,
    best_loss_, validation_scores_ / best_validation_score_ (early_stopping), coefs_,
    intercepts_, n_features_in_, feature_names_in_, n_layers_, n_outputs_, out_activation_
    and model_ (the trained fastnn Sequential).
    """

    _loss_name = "cross_entropy"
    _multilabel = False

    def _make_loss(self):
        return losses.BCEWithLogitsLoss() if self._multilabel else losses.CrossEntropyLoss()

    def _stratify(self):
        return not self._multilabel

    def _encode_targets(self, y, first):
        if first:
            self._multilabel = type_of_target(y) == "multilabel-indicator"
        if self._multilabel:
            if first:
                self._label_binarizer = LabelBinarizer().fit(y)
                self.classes_ = self._label_binarizer.classes_
            self.out_activation_ = "logistic"
            return np.asarray(y, dtype=np.float64), len(self.classes_)
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        if first and not hasattr(self, "_partial_classes"):
            self.classes_ = np.unique(y)
        elif first:
            self.classes_ = self._partial_classes
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"y contains labels not seen in classes_ {self.classes_}: {unknown[:5]}"
            )
        self.out_activation_ = "softmax"
        return np.searchsorted(self.classes_, y).astype(np.int64), max(len(self.classes_), 2)

    def _initialize(self, n_in, n_out, n, dtype):
        super()._initialize(n_in, n_out, n, dtype)
        if not self._multilabel and len(self.classes_) == n_out:
            # fastnn.save(clf.model_) records them; fastnn.load and `fastnn predict`
            # then answer in these labels
            self.model_.classes_ = self.classes_

    def _decode_for_score(self, targets):
        return targets if self._multilabel else self.classes_[targets]

    def _score_unchecked(self, X, y):
        return float(
            np.mean(
                np.all(self.predict(X) == y, axis=-1) if self._multilabel else self.predict(X) == y
            )
        )

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and labels y (n_samples,) of any type, or a
        (n_samples, n_labels) 0/1 indicator for multilabel. Returns self."""
        self.__dict__.pop("_partial_classes", None)
        return super().fit(X, y, sample_weight)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing from the current network; the first call
        needs `classes` (every label that will ever occur). Returns self."""
        if _check_partial_fit_first_call(self, classes):
            self._partial_classes = self.classes_
            self.__dict__.pop("model_", None)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in the order of classes_."""
        z = self._raw(X)
        if self._multilabel:
            return 1.0 / (1.0 + np.exp(-z))
        z = z[:, : max(len(self.classes_), 1)]
        if len(self.classes_) == 1:
            return np.ones((z.shape[0], 1))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample (n_samples,), labels from classes_ (or
        the (n_samples, n_labels) indicator for a multilabel classifier)."""
        p = self.predict_proba(X)
        if self._multilabel:
            return (p > 0.5).astype(int)
        return self.classes_[p.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (scikit-learn's API, fastnn's training): squared
    error, identity outputs, y of shape (n_samples,) or (n_samples, n_targets).

    Parameters and attributes as MLPClassifier's (without classes_), with
    out_activation_ = 'identity'.
    """

    _loss_name = "mse"

    def _make_loss(self):
        return losses.MSELoss()

    def _stratify(self):
        return False

    def _encode_targets(self, y, first):
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._y_ndim = y.ndim
        self.out_activation_ = "identity"
        y2 = y.reshape(len(y), -1)
        return y2, y2.shape[1]

    def _decode_for_score(self, targets):
        return targets if self._y_ndim == 2 else targets.reshape(-1)

    def _score_unchecked(self, X, y):
        from sklearn.metrics import r2_score

        return float(r2_score(y, self.predict(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current network. Returns self."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,) for a 1-D training target, else (n_samples, n_targets)."""
        out = self._raw(X)
        return out.reshape(-1) if self._y_ndim == 1 else out
