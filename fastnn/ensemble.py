"""Bagging (Breiman, 1996): networks trained on bootstrap samples of the training set,
their predictions averaged.

    from fastnn.ensemble import Bagging

    def build_model():
        model = fastnn.Sequential(fastnn.Dense(30, 64), fastnn.ReLU(), fastnn.Dense(64, 2))
        return fastnn.Trainer(model, fastnn.losses.CrossEntropyLoss(),
                              fastnn.optim.Adam(model.parameters(), lr=1e-3))

    bag = Bagging(build_model, n_estimators=5, random_state=0, n_jobs=2)
    bag.fit(X, y, epochs=20, batch_size=32)
    proba = bag.predict_proba(X_test)      # mean of the members' softmax outputs
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable

import numpy as np

from . import rng
from .losses import CrossEntropyLoss
from .module import Module
from .validation import as_array, positive_int


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, classes) logits in float64."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _as_trainer(built, where):
    from .optim import Adam
    from .trainer import Trainer

    if isinstance(built, Trainer):
        return built
    if isinstance(built, Module):
        return Trainer(built, CrossEntropyLoss(), Adam(built.parameters(), lr=1e-3))
    raise TypeError(
        f"{where}: build_model() must return a fastnn.Trainer or a Module, got "
        f"{type(built).__name__}"
    )


def _build(build_model, seed):
    """The member built after seeding fastnn with its seed (initial weights differ per
    member and are reproducible)."""
    rng.seed(seed)
    return _as_trainer(build_model(), "Bagging")


def _train_member(build_model, seed, X, y, fit_kwargs, threads=None):
    """Train one member on (X, y); returns its state_dict. Runs in a worker process
    when Bagging has n_jobs > 1 (then with `threads` kernel threads)."""
    if threads is not None:
        from .threads import set_num_threads

        set_num_threads(threads)
    trainer = _build(build_model, seed)
    trainer.fit(X, y, **fit_kwargs)
    return trainer.model.state_dict()


class Bagging:
    """An ensemble of `n_estimators` networks, each trained on its own bootstrap sample.

    build_model(): returns a fresh `fastnn.Trainer` (model, loss, optimizer) or a Module
    (trained with CrossEntropyLoss and Adam(lr=1e-3)). fastnn is seeded with the member's
    seed before each call, so members start from different, reproducible weights.
    A CrossEntropyLoss makes the ensemble a classifier (predict_proba averages the
    members' softmax probabilities, predict takes their argmax); any other loss a
    regressor (predict averages the members' outputs).

    max_samples: the fraction (float in (0, 1]) or number (int) of samples drawn for each
    member; bootstrap=False draws them without replacement. n_jobs: members trained in
    that many worker processes at once (None or 1: in this process; -1: one per CPU);
    worker processes are started with 'spawn' (OpenMP is not fork-safe), so build_model
    must be importable (a module-level function), and each gets cpu_count // n_jobs kernel
    threads. Members depend only on their seed and sample, so n_jobs does not change the
    result. random_state: the integer the member seeds and samples derive from.

    After fit: `estimators_` (the trained models), `trainers_`, `estimators_samples_`
    (each member's sample indices), `n_classes_` (classification).
    """

    def __init__(
        self,
        build_model: Callable[[], Any],
        n_estimators: int = 10,
        *,
        max_samples: float | int = 1.0,
        bootstrap: bool = True,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ):
        if not callable(build_model):
            raise TypeError(f"Bagging: build_model must be callable, got {build_model!r}")
        self.build_model = build_model
        self.n_estimators = positive_int(n_estimators, "Bagging n_estimators")
        if isinstance(max_samples, (float, np.floating)):
            if not 0.0 < max_samples <= 1.0:
                raise ValueError(
                    f"Bagging: max_samples as a fraction must be in (0, 1], got {max_samples}"
                )
        else:
            max_samples = positive_int(max_samples, "Bagging max_samples")
        self.max_samples = max_samples
        self.bootstrap = bool(bootstrap)
        if n_jobs is not None and n_jobs != -1:
            n_jobs = positive_int(n_jobs, "Bagging n_jobs")
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _plan(self, n):
        """(seed, sample indices) for every member."""
        count = (
            max(1, int(round(self.max_samples * n)))
            if isinstance(self.max_samples, float)
            else self.max_samples
        )
        if count > n and not self.bootstrap:
            raise ValueError(
                f"Bagging: max_samples={count} exceeds the {n} samples (without bootstrap)"
            )
        children = np.random.SeedSequence(self.random_state).spawn(self.n_estimators)
        plan = []
        for child in children:
            draw = np.random.default_rng(child)
            idx = (
                draw.integers(0, n, count)
                if self.bootstrap
                else draw.choice(n, count, replace=False)
            )
            plan.append((int(child.generate_state(1)[0]), np.sort(idx)))
        return plan

    def fit(self, X: np.ndarray, y: np.ndarray, **fit_kwargs: Any) -> Bagging:
        """Train every member on its sample of (X, y); fit_kwargs go to Trainer.fit
        (epochs, batch_size, ...; verbose defaults to 0). Returns self."""
        X, y = as_array(X, "Bagging.fit X"), as_array(y, "Bagging.fit y")
        if X.shape[0] != y.shape[0] or X.shape[0] == 0:
            raise ValueError(
                f"Bagging.fit: X has {X.shape[0]} samples and y has "
                f"{y.shape[0]}; expected the same non-zero number"
            )
        fit_kwargs.setdefault("verbose", 0)
        plan = self._plan(X.shape[0])
        outer_state = rng.get_state()  # members are seeded; the caller's stream is kept
        try:
            self._fit_members(X, y, plan, fit_kwargs)
        finally:
            rng.set_state(outer_state)
        return self

    def _fit_members(self, X, y, plan, fit_kwargs):
        jobs = os.cpu_count() if self.n_jobs == -1 else (self.n_jobs or 1)
        jobs = min(jobs, self.n_estimators)
        if jobs == 1:
            states = [_train_member(self.build_model, s, X[i], y[i], fit_kwargs) for s, i in plan]
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
                futures = [
                    pool.submit(_train_member, self.build_model, s, X[i], y[i], fit_kwargs, threads)
                    for s, i in plan
                ]
                states = [f.result() for f in futures]
        self.trainers_ = []
        for (seed, _), state in zip(plan, states):
            trainer = _build(self.build_model, seed)
            trainer.model.load_state_dict(state)
            self.trainers_.append(trainer)
        self.estimators_ = [t.model for t in self.trainers_]
        self.estimators_samples_ = [i for _, i in plan]
        self.classification_ = isinstance(self.trainers_[0].loss, CrossEntropyLoss)
        if self.classification_:
            self.n_classes_ = int(self.estimators_[0].predict(X[:1]).shape[1])

    def _check_fitted(self, where):
        if not hasattr(self, "estimators_"):
            raise RuntimeError(f"Bagging.{where}: call fit first")

    def member_outputs(self, X: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
        """Each member's output on X: a list of arrays (softmax probabilities for a
        classifier, raw outputs for a regressor)."""
        self._check_fitted("member_outputs")
        outs = [m.predict(X, batch_size=batch_size) for m in self.estimators_]
        return [softmax(o) for o in outs] if self.classification_ else outs

    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Mean of the members' class probabilities, (n, classes) float64."""
        self._check_fitted("predict_proba")
        if not self.classification_:
            raise AttributeError(
                "Bagging.predict_proba: the members are regressors "
                "(their loss is not CrossEntropyLoss)"
            )
        return np.mean(self.member_outputs(X, batch_size), axis=0)

    def predict(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Classifier: the class of highest mean probability (n,). Regressor: the mean
        of the members' outputs."""
        if getattr(self, "classification_", False):
            return self.predict_proba(X, batch_size).argmax(axis=1)
        self._check_fitted("predict")
        return np.mean(self.member_outputs(X, batch_size), axis=0)

    def __repr__(self):
        return (
            f"Bagging(n_estimators={self.n_estimators}, max_samples={self.max_samples}, "
            f"bootstrap={self.bootstrap}, n_jobs={self.n_jobs}, "
            f"random_state={self.random_state})"
        )
