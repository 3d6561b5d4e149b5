"""Model bias or optimisation?. When the training loss stays
high, train a shallower, easier-to-optimise model with the same settings: if the
deeper model cannot reach a training loss at least as low as the shallow one - though
it could represent everything the shallow one does - the optimisation is failing,
not the model's capacity."""

import math

import numpy as np

from .. import rng
from ..losses import CrossEntropyLoss, MSELoss
from ..optim import Adam
from ..trainer import Trainer
from ._objective import preserved_rng
from ._plot import pyplot, save
from ._result import Result, fmt, table


class TriageResult(Result):
    """Outcome of triage: `kind` is 'optimization' (the deep model ends with a higher
    training loss than the shallow one), 'model bias' (neither gets the training loss
    low: a bigger model or better features are needed) or 'ok' (the training loss is
    low; look at the test loss next - overfitting or mismatch). `shallow` and `deep`
    are the per-epoch training-loss curves; `shallow_loss` and `deep_loss` the final
    training losses (evaluated on all of X in eval mode); `baseline` the loss of the
    best constant prediction; `target` the loss counted as low; `advice`."""

    title = "model bias vs optimisation"

    def __init__(
        self, kind, shallow, deep, shallow_loss, deep_loss, baseline, target, advice, params
    ):
        self.kind = kind
        self.shallow, self.deep = np.asarray(shallow), np.asarray(deep)
        self.shallow_loss, self.deep_loss = shallow_loss, deep_loss
        self.baseline, self.target = baseline, target
        self.advice = advice
        self.params = params

    def _lines(self):
        rows = [
            (
                "shallow",
                self.params[0],
                len(self.shallow),
                float(self.shallow[0]) if len(self.shallow) else None,
                self.shallow_loss,
            ),
            (
                "deep",
                self.params[1],
                len(self.deep),
                float(self.deep[0]) if len(self.deep) else None,
                self.deep_loss,
            ),
        ]
        return [
            f"  verdict: {self.kind}",
            table(
                ("model", "parameters", "epochs", "first epoch loss", "final training loss"), rows
            ),
            f"  best constant prediction: {fmt(self.baseline)}; 'low' means below "
            f"{fmt(self.target)}",
        ] + [f"  -> {a}" for a in self.advice]

    def plot(self, path):
        """Both training-loss curves by epoch, saved at path."""
        plt = pyplot("TriageResult")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(np.arange(1, len(self.shallow) + 1), self.shallow, label="shallow")
        ax.plot(np.arange(1, len(self.deep) + 1), self.deep, label="deep")
        ax.axhline(self.baseline, color="gray", linestyle=":", label="constant prediction")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.set_title(f"triage: {self.kind}")
        ax.legend()
        return save(fig, path)


def _baseline(loss, y):
    y = np.asarray(y)
    if isinstance(loss, CrossEntropyLoss):
        counts = np.bincount(y.astype(np.int64))
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())
    t = y.reshape(y.shape[0], -1).astype(np.float64)
    return float(np.mean((t - t.mean(axis=0)) ** 2))


def _train(factory, loss, optimizer, X, y, epochs, batch_size, seed):
    rng.seed(seed)
    model = factory()
    opt = optimizer(model.parameters())
    trainer = Trainer(model, loss, opt, metrics=())
    trainer.terminate_on_nan = False
    history = trainer.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
    final = trainer.evaluate(X, y)["loss"]
    params = sum(p.size for p in model.parameters())
    return list(history.history.get("loss", [])), float(final), params


def triage(
    model_factory_shallow,
    model_factory_deep,
    X,
    y,
    loss=None,
    epochs=20,
    batch_size=32,
    optimizer=None,
    lr=1e-3,
    seed=0,
    margin=0.05,
    low=0.1,
):
    """Train a shallow and a deep model with the same optimiser settings, batches and
    seed, and compare their *training* losses (the standard test).

    model_factory_shallow / model_factory_deep: callables returning a fresh model.
    loss: default CrossEntropyLoss for integer labels, else MSELoss. optimizer: a
    callable taking the parameters (default Adam(lr=lr)). Both models are trained for
    `epochs` epochs, each built and trained after fastnn.seed(seed) (fastnn's random
    state is restored afterwards); their final training losses are measured on all of
    X in eval mode.

    Verdict (`kind`): 'optimization' when the deep model's final training loss exceeds
    the shallow one's by more than `margin` (relative) - a deeper model can represent
    the shallow one, so it should fit at least as well; advice: a better optimiser or
    learning rate, normalisation (BatchNorm), residual connections, better
    initialisation. Otherwise 'model bias' when the better of the two is still above
    `low` times the loss of the best constant prediction - advice: a bigger model or
    better features - and 'ok' when the training loss is low."""
    X = np.asarray(X)
    y = np.asarray(y)
    if loss is None:
        loss = CrossEntropyLoss() if y.dtype.kind in "iu" else MSELoss()
    if optimizer is None:

        def optimizer(params):
            return Adam(params, lr=lr)

    with preserved_rng():
        shallow, s_final, s_params = _train(
            model_factory_shallow, loss, optimizer, X, y, epochs, batch_size, seed
        )
        deep, d_final, d_params = _train(
            model_factory_deep, loss, optimizer, X, y, epochs, batch_size, seed
        )
    baseline = _baseline(loss, y)
    target = low * baseline
    advice = []
    if not math.isfinite(d_final) or d_final > s_final * (1 + margin) + 1e-12:
        kind = "optimization"
        advice.append(
            f"the deeper model ends with a higher training loss ({fmt(d_final)}) than the "
            f"shallow one ({fmt(s_final)}) although it can represent it: an optimisation "
            "problem. Try a better optimiser or learning rate (Adam, a learning-rate "
            "schedule), BatchNorm between layers, residual connections, ReLU instead of "
            "sigmoid/tanh, Kaiming/Xavier initialisation; check gradient_stats for "
            "vanishing gradients"
        )
    elif min(s_final, d_final) > target:
        kind = "model bias"
        advice.append(
            f"both models keep a high training loss (best {fmt(min(s_final, d_final))}, "
            f"constant prediction {fmt(baseline)}): the model family cannot fit the data - "
            "use a bigger model (more units or layers) or better features; also train "
            "longer and check the labels (check_data)"
        )
    else:
        kind = "ok"
        advice.append(
            f"the training loss is low ({fmt(min(s_final, d_final))}): if the test loss is "
            "high, it is overfitting (more data, augmentation, regularisation) or a "
            "train/test mismatch (check_data with X_test)"
        )
    return TriageResult(
        kind, shallow, deep, s_final, d_final, baseline, target, advice, (s_params, d_params)
    )
