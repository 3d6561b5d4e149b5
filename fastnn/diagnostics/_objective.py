"""The loss of a model on a fixed batch as a function of the model's trainable
parameters, evaluated on a private working copy.

Every diagnostic that probes a model works on `working_copy(model)` - a deep copy,
optionally converted to float64 - so the user's model, its optimizer buffers and its
running statistics are never touched. Only the public Module API is used (forward,
backward, parameters, named_parameters, modules, astype, train), so user-written
modules work as long as they implement forward and backward."""

import contextlib
import copy

import numpy as np

from .. import rng
from ..layers.dropout import DropConnect, Dropout
from ..module import Module


@contextlib.contextmanager
def preserved_rng():
    """Run a block and put fastnn's random state back as it was: diagnostics never
    shift the shuffling or dropout streams of the user's training run."""
    state = rng.get_state()
    try:
        yield state
    finally:
        rng.set_state(state)


def check_model(model, where):
    if not isinstance(model, Module):
        raise TypeError(f"{where}: model must be a fastnn Module, got {type(model).__name__}")


def is_dropout(module):
    """Built-in dropout layers, and user/later layers that say so by name (Dropout,
    DropConnect, SpatialDropout, DropBlock, StochasticDepth, Cutout, ...)."""
    if isinstance(module, (Dropout, DropConnect)):
        return True
    name = type(module).__name__.lower()
    return "drop" in name or name in ("stochasticdepth", "cutout")


def disable_dropout(model):
    """Put every dropout-like module of model in eval mode (the rest keeps its mode)."""
    for m in model.modules():
        if is_dropout(m):
            m.training = False
    return model


def working_copy(model, dtype=None, train=True, dropout=True, penalties=True):
    """A deep copy of model in training (or eval) mode, converted to dtype if given,
    with dropout disabled when dropout=False and weight penalties removed when
    penalties=False."""
    work = copy.deepcopy(model)
    if dtype is not None:
        work.astype(dtype)
    work.train(train)
    if not dropout:
        disable_dropout(work)
    if not penalties:
        for m in work.modules():
            if getattr(m, "regularizer", None) is not None:
                m.regularizer = None
    return work


def trainable(model):
    """[(name, Parameter)] of the parameters that receive gradients."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def named_modules(model, prefix=""):
    """(dotted name, module) for model and all its descendants, depth first."""
    yield prefix.rstrip(".") or type(model).__name__, model
    for name, child in model.named_children():
        yield from named_modules(child, f"{prefix}{name}.")


def leaf_modules(model):
    """[(name, module)] of the modules without children (the layers that compute)."""
    return [(n, m) for n, m in named_modules(model) if not list(m.named_children())]


def as_float(X, dtype, where):
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{where}: X must be numeric, got dtype {X.dtype}")
    return np.ascontiguousarray(X, dtype=dtype)


def as_target(y, dtype):
    """Integer labels stay integers; other targets become dtype."""
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        return np.ascontiguousarray(y, dtype=np.int64)
    return np.ascontiguousarray(y, dtype=dtype)


class Objective:
    """L(theta) = loss(model(X), y) (+ the layers' weight penalties) on a working copy of
    the model, theta the trainable parameters flattened in named_parameters order.

    dropout='fixed' keeps dropout layers active but restores fastnn's random state
    before every forward pass, so every evaluation draws the same masks (the masks come
    from a counter-based generator); dropout='off' disables them."""

    def __init__(
        self,
        model,
        loss,
        X,
        y,
        dtype=np.float64,
        dropout="off",
        train=True,
        penalties=True,
        where="diagnostics",
    ):
        check_model(model, where)
        if dropout not in ("off", "fixed"):
            raise ValueError(f"{where}: dropout must be 'off' or 'fixed', got {dropout!r}")
        self.model = working_copy(
            model, dtype, train=train, dropout=(dropout == "fixed"), penalties=penalties
        )
        self.dtype = np.dtype(dtype)
        self.loss = copy.deepcopy(loss)
        self.X = as_float(X, self.dtype, where)
        self.y = as_target(y, self.dtype)
        if self.X.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"{where}: X has {self.X.shape[0]} samples but y has {self.y.shape[0]}"
            )
        self.params = trainable(self.model)
        if not self.params:
            raise ValueError(f"{where}: the model has no trainable parameters")
        self.names = [n for n, _ in self.params]
        self.shapes = [p.shape for _, p in self.params]
        sizes = [p.size for _, p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.size = int(self.offsets[-1])
        self._rng_state = rng.get_state()
        self.evaluations = 0

    # -- the parameter vector ----------------------------------------------------------
    def get(self):
        """theta as a new flat array."""
        return np.concatenate([p.data.reshape(-1) for _, p in self.params]).astype(
            self.dtype, copy=False
        )

    def set(self, theta):
        for (_, p), lo, hi in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            p.data.reshape(-1)[...] = theta[lo:hi]

    def flat_grad(self):
        return np.concatenate([p.grad.reshape(-1) for _, p in self.params]).astype(
            self.dtype, copy=False
        )

    def split(self, vector):
        """{parameter name: the slice of a flat vector, in the parameter's shape}."""
        return {
            n: np.asarray(vector[lo:hi]).reshape(s)
            for n, s, lo, hi in zip(self.names, self.shapes, self.offsets[:-1], self.offsets[1:])
        }

    # -- evaluation -------------------------------------------------------------------
    def _forward(self, X):
        rng.set_state(self._rng_state)  # same dropout masks every time
        self.evaluations += 1
        out = self.model.forward(X)
        return float(self.loss(out, self.y)) + float(self.model.penalty())

    def value(self, X=None):
        return self._forward(self.X if X is None else X)

    def value_and_grads(self, X=None):
        """(L, dL/dX, flat dL/dtheta) at the current parameters."""
        X = self.X if X is None else X
        self.model.zero_grad()
        value = self._forward(X)
        gx = self.model.backward(self.loss.backward())
        self.model.add_penalties()
        return value, None if gx is None else np.asarray(gx), self.flat_grad()

    def gradient(self, theta):
        """dL/dtheta at theta (the working copy's parameters are left at theta)."""
        self.set(theta)
        self.model.zero_grad()
        self._forward(self.X)
        self.model.backward(self.loss.backward())
        self.model.add_penalties()
        return self.flat_grad()

    def value_at(self, theta):
        self.set(theta)
        return self._forward(self.X)
