"""fastnn.diagnostics: gradient check on every built-in layer and against wrong user
layers, the Hessian spectrum against exact eigenvalues and at a saddle, seed 002's
depth experiment, the data checks against planted defects, overfitting a tiny batch,
the loss at initialisation, model-bias/optimisation triage, layer statistics, plots
and the doctor (function and command line)."""

import argparse
import csv

import numpy as np
import pytest

import fastnn
import fastnn.io
from fastnn import (
    ELU,
    GELU,
    AbsReLU,
    BatchNorm1d,
    Dense,
    DropConnect,
    Dropout,
    GroupNorm,
    HardTanh,
    Identity,
    LayerNorm,
    LeakyReLU,
    Maxout,
    PReLU,
    RBF,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
    weight_norm,
)
from fastnn import diagnostics as D
from fastnn import rng as fastnn_rng
from fastnn.datasets import load_digits
from fastnn.losses import CrossEntropyLoss, L1Loss, MSELoss
from fastnn.optim import SGD
from fastnn.preprocessing import Standardizer
from fastnn.regularizers import L2


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    return Standardizer().fit_transform(X), y


def small_batch(n=12, d=6, k=3, seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal((n, d)).astype(np.float32), g.integers(0, k, n)


# -- gradient_check ------------------------------------------------------------------------
def _mlp(*middle, d_in=6, width=8, k=3):
    return Sequential(Dense(d_in, width), *middle, Dense(width, k))


BUILTIN_MODELS = {
    "relu": lambda: _mlp(ReLU()),
    "leaky_relu": lambda: _mlp(LeakyReLU(0.1)),
    "prelu": lambda: _mlp(PReLU(8)),
    "abs_relu": lambda: _mlp(AbsReLU()),
    "sigmoid": lambda: _mlp(Sigmoid()),
    "tanh": lambda: _mlp(Tanh()),
    "hardtanh": lambda: _mlp(HardTanh()),
    "softplus": lambda: _mlp(Softplus()),
    "elu": lambda: _mlp(ELU()),
    "gelu": lambda: _mlp(GELU()),
    "gelu_tanh": lambda: _mlp(GELU("tanh")),
    "identity": lambda: _mlp(Identity()),
    "softmax": lambda: _mlp(Tanh(), Softmax()),
    "batchnorm": lambda: _mlp(BatchNorm1d(8), ReLU()),
    "layernorm": lambda: _mlp(LayerNorm(8), Tanh()),
    "groupnorm": lambda: _mlp(GroupNorm(2, 8), ELU()),
    "dropout": lambda: _mlp(ReLU(), Dropout(0.5)),
    "dropconnect": lambda: Sequential(DropConnect(Dense(6, 8), 0.3), Tanh(), Dense(8, 3)),
    "weight_norm": lambda: Sequential(weight_norm(Dense(6, 8)), ReLU(), Dense(8, 3)),
    "maxout": lambda: Sequential(Maxout(6, 8, 3), Dense(8, 3)),
    "rbf": lambda: Sequential(RBF(6, 8), Dense(8, 3)),
    "l2_penalty": lambda: Sequential(Dense(6, 8, regularizer=L2(1e-2)), ReLU(), Dense(8, 3)),
}


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_gradient_check_passes_on_builtin_layers(name):
    fastnn.seed(1)
    model = BUILTIN_MODELS[name]()
    X, y = small_batch()
    result = D.gradient_check(model, CrossEntropyLoss(), X, y)
    assert result.passed, result
    assert result.max_rel_error < 1e-7
    assert set(result.per_parameter) == {n for n, _ in model.named_parameters()}
    assert result.input_rel_error < 1e-7


@pytest.mark.parametrize("loss", [MSELoss(), L1Loss()], ids=["mse", "l1"])
def test_gradient_check_regression_losses(loss):
    fastnn.seed(2)
    X, _ = small_batch()
    t = np.random.default_rng(3).standard_normal((12, 3))
    assert D.gradient_check(_mlp(Tanh()), loss, X, t).passed


class Scale(fastnn.Module):
    """y = x * w (w per feature), a user-written layer; `factor` spoils the parameter
    gradient and `input_factor` the input gradient."""

    def __init__(self, n, factor=1.0, input_factor=1.0):
        super().__init__()
        self.w = fastnn.Parameter(np.linspace(0.5, 1.5, n).astype(np.float32), "w")
        self.factor, self.input_factor = factor, input_factor

    def forward(self, x):
        self.x = np.asarray(x)
        return self.x * self.w.data

    def backward(self, g):
        self.w.grad += self.factor * (g * self.x).sum(axis=0)
        return self.input_factor * g * self.w.data


def test_gradient_check_user_module_correct_backward_passes():
    fastnn.seed(0)
    model = Sequential(Dense(6, 8), Scale(8), Tanh(), Dense(8, 3))
    X, y = small_batch()
    result = D.gradient_check(model, CrossEntropyLoss(), X, y)
    assert result.passed, result
    assert "1.w" in result.per_parameter


def test_gradient_check_catches_wrong_parameter_gradient():
    fastnn.seed(0)
    model = Sequential(Dense(6, 8), Scale(8, factor=1.5), Tanh(), Dense(8, 3))
    X, y = small_batch()
    result = D.gradient_check(model, CrossEntropyLoss(), X, y)
    assert not result.passed
    assert result.failures == ["1.w"]
    assert result.per_parameter["1.w"] > 0.1
    assert result.per_parameter["0.weight"] < 1e-7  # the layers behind are right
    assert "WRONG" in repr(result) and "FAIL" in repr(result)


def test_gradient_check_catches_wrong_input_gradient():
    fastnn.seed(0)
    model = Sequential(Dense(6, 8), Scale(8, input_factor=2.0), Tanh(), Dense(8, 3))
    X, y = small_batch()
    result = D.gradient_check(model, CrossEntropyLoss(), X, y)
    assert not result.passed
    # the wrong input gradient of layer 1 spoils everything before it
    assert result.per_parameter["0.weight"] > 0.1 and result.input_rel_error > 0.1
    assert result.per_parameter["3.weight"] < 1e-7


def test_gradient_check_eval_mode_uses_running_statistics():
    fastnn.seed(4)
    model = _mlp(BatchNorm1d(8), ReLU(), Dropout(0.5))
    X, y = small_batch()
    for _ in range(3):  # non-trivial running statistics
        model.forward(X * 3 + 1)
    result = D.gradient_check(model, CrossEntropyLoss(), X, y, train=False)
    assert result.passed, result


def test_gradient_check_leaves_model_and_random_state_alone():
    fastnn.seed(5)
    model = _mlp(ReLU(), Dropout(0.5))
    before = model.state_dict()
    state = fastnn_rng.get_state()
    X, y = small_batch()
    D.gradient_check(model, CrossEntropyLoss(), X, y)
    assert fastnn_rng.get_state() == state
    assert model.dtype == np.float32 and model.training
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_gradient_check_samples_large_parameters():
    fastnn.seed(0)
    model = Sequential(Dense(40, 50), ReLU(), Dense(50, 3))
    X, y = small_batch(d=40)
    result = D.gradient_check(model, CrossEntropyLoss(), X, y, max_entries=10)
    assert result.passed
    assert result.n_checked["0.weight"] == 10 and result.n_entries["0.weight"] == 2000
    assert result.n_checked["2.bias"] == 3


# -- hessian_spectrum ----------------------------------------------------------------------
def _least_squares(n, d, seed):
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, d)) * g.uniform(0.5, 3.0, d)
    t = X @ g.standard_normal(d) + 0.3 + 0.1 * g.standard_normal(n)
    A = np.hstack([X, np.ones((n, 1))])
    return X, t.reshape(-1, 1), np.linalg.eigvalsh(2.0 / n * A.T @ A)


def test_hessian_least_squares_dense_equals_exact():
    X, t, exact = _least_squares(40, 3, 0)
    fastnn.seed(0)
    model = Dense(3, 1, dtype=np.float64)
    result = D.hessian_spectrum(model, MSELoss(), X, t)
    assert result.method == "dense"
    np.testing.assert_allclose(result.eigenvalues, exact, rtol=1e-6)
    assert result.kind == "minimum" and result.escape_direction is None
    assert result.eigenvectors.shape == (4, 4)
    with pytest.raises(ValueError, match="negative curvature"):
        result.escape(model, 0.1)


def test_hessian_least_squares_lanczos_equals_exact_extremes():
    X, t, exact = _least_squares(100, 30, 1)
    fastnn.seed(0)
    model = Dense(30, 1)  # float32 model: the spectrum is computed on a float64 copy
    result = D.hessian_spectrum(model, MSELoss(), X, t, k=6, dense_max=0)
    assert result.method == "lanczos"
    assert result.eigenvectors.shape == (31, 6)
    np.testing.assert_allclose(result.eigenvalues, np.r_[exact[:3], exact[-3:]], rtol=1e-5)
    # the eigenvectors are those of the exact Hessian
    A = np.hstack([X, np.ones((100, 1))])
    H = 2.0 / 100 * A.T @ A
    for i in range(6):
        v = result.eigenvectors[:, i]
        np.testing.assert_allclose(H @ v, result.eigenvalues[i] * v, atol=1e-5 * exact[-1])
    assert result.residuals.max() < 1e-6


def _zero_linear_net(seed=0):
    g = np.random.default_rng(seed)
    X = g.standard_normal((64, 4))
    T = X @ g.standard_normal((4, 2))
    T -= T.mean(axis=0)  # zero-mean targets
    model = Sequential(Dense(4, 3, bias=False), Dense(3, 2, bias=False))
    for p in model.parameters():
        p.data[...] = 0
    return model, X, T


def test_hessian_zero_two_layer_linear_net_is_a_saddle_and_escapes():
    model, X, T = _zero_linear_net()
    result = D.hessian_spectrum(model, MSELoss(), X, T)
    assert result.kind == "saddle"
    assert result.gradient_norm == 0.0
    lo, hi = result.eigenvalues[0], result.eigenvalues[-1]
    assert lo < -result.tolerance and hi > result.tolerance
    # at 0 the Hessian is [[0, B], [B^T, 0]]: its spectrum is symmetric about 0
    np.testing.assert_allclose(result.all_eigenvalues, -result.all_eigenvalues[::-1], atol=1e-6)
    d = result.escape_direction
    assert d.shape == (18,) and abs(np.linalg.norm(d) - 1) < 1e-12
    before = MSELoss()(model.predict(X), T)
    path = result.escape(model, step=0.5)
    assert path.decreased
    assert np.all(np.diff(path.losses) < 0)  # the loss falls all along the path
    after = MSELoss()(model.predict(X), T)
    assert after < before - 0.1
    np.testing.assert_allclose(after, path.losses[-1], rtol=1e-5)
    with pytest.raises(ValueError, match="changed"):
        result.escape(model, 0.1)  # the model is no longer at the analysed point


def test_hessian_lanczos_finds_the_saddle_too():
    model, X, T = _zero_linear_net(1)
    dense = D.hessian_spectrum(model, MSELoss(), X, T, k=4)
    lanczos = D.hessian_spectrum(model, MSELoss(), X, T, k=4, dense_max=0)
    assert lanczos.method == "lanczos" and lanczos.kind == "saddle"
    np.testing.assert_allclose(lanczos.eigenvalues, dense.eigenvalues, rtol=1e-6, atol=1e-8)


# -- init_depth_experiment -----------------------------------------------------------------
def test_depth_experiment_relu_kaiming_stable_normal_explodes_small_vanishes():
    result = D.init_depth_experiment(depth=10, width=128, activation="relu", n=200)
    k, big, small = result.std["kaiming"], result.std["normal"], result.std["small_normal"]
    assert k.shape == (10,)
    assert 0.25 < k[-1] / k[0] < 4 and np.all((k > 0.2) & (k < 5))
    assert big[-1] > 1e6 * big[0]
    assert small[-1] < 1e-6 * small[0]
    assert np.all(result.std["zeros"] == 0)
    assert result.verdicts == {
        "zeros": "dead",
        "normal": "exploding",
        "small_normal": "vanishing",
        "xavier": "vanishing",
        "kaiming": "stable",
    }
    assert "kaiming" in repr(result)


def test_depth_experiment_tanh_xavier_keeps_spread():
    result = D.init_depth_experiment(
        depth=8, width=128, activation="tanh", n=200, inits=("normal", "xavier")
    )
    assert result.verdicts == {"normal": "saturated", "xavier": "stable"}
    with pytest.raises(ValueError, match="activation"):
        D.init_depth_experiment(activation="sigmoid")


# -- check_data ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clean():
    g = np.random.default_rng(0)
    centers = 2 * g.standard_normal((5, 10))

    def draw(n):
        y = g.integers(0, 5, n)
        return centers[y] + g.standard_normal((n, 10)), y

    X, y = draw(800)
    Xt, yt = draw(250)
    m, s = X.mean(axis=0), X.std(axis=0)
    return (X - m) / s, y, (Xt - m) / s, yt


def test_check_data_clean_passes(clean):
    X, y, Xt, yt = clean
    report = D.check_data(X, y, Xt, yt, n_classes=5)
    assert report.passed and report.issues == [], report
    assert report.task == "classification" and report.class_counts[0] > 100


def _separate_shuffle(X, y):
    g = np.random.default_rng(1)
    px, py = g.permutation(len(X)), g.permutation(len(X))
    for i in range(0, len(X), 32):
        yield X[px[i : i + 32]], y[py[i : i + 32]]


def _together_shuffle(X, y):
    p = np.random.default_rng(1).permutation(len(X))
    for i in range(0, len(X), 32):
        yield X[p[i : i + 32]].astype(np.float32), y[p[i : i + 32]]


def _plant(defect, X, y, Xt, yt):
    X, y, Xt, yt = X.copy(), y.copy(), Xt.copy(), yt.copy()
    kw = {}
    if defect == "nan":
        X[17, 3] = np.nan
        X[40, 0] = np.inf
    elif defect == "constant":
        X[:, 6] = 4.0
    elif defect == "scale":
        X[:, 2] *= 5000
    elif defect == "duplicates_across_splits":
        Xt[:15] = X[100:115]
    elif defect == "label_out_of_range":
        y[9] = 5
        kw["n_classes"] = 5
    elif defect == "negative_label":
        y[9] = -1
    elif defect == "one_based":
        y = y + 1
    elif defect == "shifted_feature":
        Xt[:, 7] += 1.5
    elif defect == "test_not_standardised":
        Xt = Xt * 7 + 20
    elif defect == "labels_shuffled_separately":
        y = np.random.default_rng(3).permutation(y)
    elif defect == "loader_separates_labels":
        kw["batches"] = _separate_shuffle
    elif defect == "conflicting_duplicates":
        X[200:220] = X[300:320]
        y[200:220] = (y[300:320] + 1) % 5
    return X, y, Xt, yt, kw


PLANTED = {
    "nan": "nonfinite",
    "constant": "constant_feature",
    "scale": "scale_spread",
    "duplicates_across_splits": "train_test_duplicates",
    "label_out_of_range": "label_range",
    "negative_label": "label_range",
    "one_based": "label_gaps",
    "shifted_feature": "distribution_shift",
    "test_not_standardised": "preprocessing_mismatch",
    "labels_shuffled_separately": "labels_unrelated",
    "loader_separates_labels": "batching_misaligned",
    "conflicting_duplicates": "conflicting_labels",
}


@pytest.mark.parametrize("defect", sorted(PLANTED))
def test_check_data_catches_planted_defect(clean, defect):
    X, y, Xt, yt, kw = _plant(defect, *clean)
    report = D.check_data(X, y, Xt, yt, **kw)
    assert PLANTED[defect] in report.codes, report
    issue = report.issue(PLANTED[defect])
    assert issue.message and issue.advice


def test_check_data_details(clean):
    X, y, Xt, yt, _ = _plant("nan", *clean)
    report = D.check_data(X, y)
    assert not report.passed
    issue = report.issue("nonfinite")
    assert issue.where == [(17, 3), (40, 0)] and "1 NaN and 1 infinite" in issue.message
    X, y, Xt, yt, _ = _plant("shifted_feature", *clean)
    assert D.check_data(X, y, Xt, yt).issue("distribution_shift").where == [7]
    X, y, Xt, yt, _ = _plant("duplicates_across_splits", *clean)
    assert D.check_data(X, y, Xt, yt).issue("train_test_duplicates").where[:15] == list(range(15))


def test_check_data_accepts_a_loader_that_shuffles_together(clean):
    X, y, _, _ = clean
    report = D.check_data(X, y, batches=_together_shuffle)
    assert report.passed and not report.issues


def test_check_data_regression_and_shapes(clean):
    X = clean[0]
    g = np.random.default_rng(0)
    t = 2 * X[:, 0] + 0.1 * g.standard_normal(len(X))
    assert D.check_data(X, t).issues == []
    assert "labels_unrelated" in D.check_data(X, g.permutation(t)).codes
    report = D.check_data(X, t[:-1])
    assert not report.passed and report.codes == {"length_mismatch"}


# -- overfit_small_batch -------------------------------------------------------------------
def test_overfit_small_batch_passes_on_a_reasonable_mlp(digits):
    X, y = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 64), ReLU(), Dropout(0.3), Dense(64, 10))
    before = model.state_dict()
    result = D.overfit_small_batch(model, CrossEntropyLoss(), X, y, steps=150)
    assert result.passed, result
    assert result.final_loss < 1e-2 and result.accuracy == 1.0
    assert len(result.losses) == 151 and result.advice == []
    for k, v in model.state_dict().items():  # trained a copy
        np.testing.assert_array_equal(v, before[k])


def test_overfit_small_batch_fails_with_zero_learning_rate(digits):
    X, y = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 64), ReLU(), Dense(64, 10))
    result = D.overfit_small_batch(model, CrossEntropyLoss(), X, y, steps=50, lr=0.0)
    assert not result.passed
    assert result.final_loss == pytest.approx(result.initial_loss)
    assert any("learning rate" in a for a in result.advice)


def test_overfit_small_batch_blames_conflicting_labels(digits):
    X, _ = digits
    Xd = np.repeat(X[:8], 2, axis=0)
    yd = np.arange(16) % 10
    fastnn.seed(0)
    model = Sequential(Dense(64, 32), ReLU(), Dense(32, 10))
    result = D.overfit_small_batch(model, CrossEntropyLoss(), Xd, yd, steps=100)
    assert not result.passed
    assert any("identical input with a different label" in a for a in result.advice)


# -- loss_at_init --------------------------------------------------------------------------
def test_loss_at_init_healthy_mlp(digits):
    X, y = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 64), ReLU(), Dense(64, 10))
    result = D.loss_at_init(model, CrossEntropyLoss(), X, y)
    assert result.passed
    assert result.expected == pytest.approx(np.log(10))
    assert abs(result.loss - np.log(10)) < 0.2


def test_loss_at_init_flags_last_layer_scaled_by_100(digits):
    X, y = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 64), ReLU(), Dense(64, 10))
    model[2].weight.data *= 100
    result = D.loss_at_init(model, CrossEntropyLoss(), X, y)
    assert not result.passed
    assert result.loss > 3 * np.log(10)
    assert "over-confident" in result.advice[0]


def test_loss_at_init_explains_label_range(digits):
    X, y = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 32), ReLU(), Dense(32, 10))
    result = D.loss_at_init(model, CrossEntropyLoss(), X, y + 1)
    assert not result.passed and "1-based" in result.advice[0]
    small = Sequential(Dense(64, 32), ReLU(), Dense(32, 5))
    result = D.loss_at_init(small, CrossEntropyLoss(), X, y)
    assert not result.passed and "5 outputs" in result.advice[0]


def test_loss_at_init_regression(digits):
    X, _ = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 32), ReLU(), Dense(32, 1))
    t = X[:, 10]
    assert D.loss_at_init(model, MSELoss(), X, t).passed
    model[2].weight.data *= 100
    result = D.loss_at_init(model, MSELoss(), X, t)
    assert not result.passed and "too large" in result.advice[0]


# -- triage --------------------------------------------------------------------------------
def _sigmoid_stack(depth, d_in=64, width=32, k=10):
    layers = []
    for i in range(depth):
        layers += [Dense(d_in if i == 0 else width, width), Sigmoid()]
    return Sequential(*layers, Dense(width, k))


def test_triage_deep_sigmoid_net_is_an_optimization_problem(digits):
    X, y = digits
    result = D.triage(
        lambda: _sigmoid_stack(1),
        lambda: _sigmoid_stack(10),
        X[:500],
        y[:500],
        epochs=8,
        optimizer=lambda p: SGD(p, lr=0.1),
    )
    assert result.kind == "optimization", result
    assert result.deep_loss > result.shallow_loss * 1.2
    assert len(result.shallow) == len(result.deep) == 8
    assert "optimis" in result.advice[0]


def test_triage_model_bias_on_random_labels():
    g = np.random.default_rng(0)
    X = g.standard_normal((300, 20)).astype(np.float32)
    y = g.integers(0, 5, 300)
    result = D.triage(
        lambda: Sequential(Dense(20, 5)),
        lambda: Sequential(Dense(20, 8), ReLU(), Dense(8, 5)),
        X,
        y,
        epochs=4,
    )
    assert result.kind == "model bias"


# -- activation_stats / gradient_stats -----------------------------------------------------
def test_activation_stats_flags_dead_relus_and_saturation(digits):
    X, _ = digits
    fastnn.seed(0)
    healthy = Sequential(Dense(64, 32), ReLU(), Dense(32, 32), Tanh(), Dense(32, 10))
    stats = D.activation_stats(healthy, X)
    assert stats.passed, stats
    assert [a.type for a in stats.layers] == ["Dense", "ReLU", "Dense", "Tanh", "Dense"]
    dead = Sequential(Dense(64, 32), ReLU(), Dense(32, 10))
    dead[0].bias.data[:16] = -100
    stats = D.activation_stats(dead, X)
    assert stats["1"].dead == pytest.approx(0.5)
    assert "dead_units" in {i.code for i in stats.issues}
    hot = Sequential(Dense(64, 32), Sigmoid(), Dense(32, 10))
    hot[0].weight.data *= 50
    stats = D.activation_stats(hot, X)
    assert stats["1"].saturation > 0.5 and not stats.passed
    assert "saturation" in {i.code for i in stats.issues}


def test_gradient_stats_vanishing_exploding_healthy(digits):
    X, y = digits
    fastnn.seed(0)
    healthy = Sequential(Dense(64, 64), ReLU(), Dense(64, 10))
    stats = D.gradient_stats(healthy, CrossEntropyLoss(), X, y)
    assert stats.kind == "healthy" and stats.passed
    assert stats["0.weight"].grad_norm > 0 and stats["0.weight"].ratio > 0
    vanishing = D.gradient_stats(_sigmoid_stack(10), CrossEntropyLoss(), X, y)
    assert vanishing.kind == "vanishing" and not vanishing.passed
    assert vanishing.depth_ratio < 1e-3

    def big(w):
        return fastnn.init.normal_(w, 0.0, 1.0)

    layers = []
    for _ in range(6):
        layers += [Dense(64, 64, init=big), ReLU()]
    exploding = D.gradient_stats(Sequential(*layers, Dense(64, 10)), CrossEntropyLoss(), X, y)
    assert exploding.kind == "exploding"


# -- plots ---------------------------------------------------------------------------------
def test_plots_are_written(tmp_path, digits):
    pytest.importorskip("matplotlib")
    X, y = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 16), ReLU(), Dense(16, 10))
    results = {
        "act": D.activation_stats(model, X),
        "grad": D.gradient_stats(model, CrossEntropyLoss(), X, y),
        "overfit": D.overfit_small_batch(model, CrossEntropyLoss(), X, y, steps=20),
        "depth": D.init_depth_experiment(depth=4, width=32, n=50),
        "triage": D.triage(
            lambda: Sequential(Dense(64, 10)), lambda: model, X[:100], y[:100], epochs=2
        ),
    }
    for name, r in results.items():
        path = tmp_path / f"{name}.png"
        r.plot(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- doctor --------------------------------------------------------------------------------
def test_run_doctor_default_model(tmp_path, digits):
    X, y = load_digits()
    report = D.run_doctor(X[:400], y[:400], out=tmp_path, print_fn=None)
    assert report.passed, report.text
    assert set(report.results) == {
        "data",
        "loss_at_init",
        "gradient_check",
        "overfit_small_batch",
        "gradient_stats",
        "activation_stats",
    }
    assert "fastnn doctor: PASS" in report.text
    assert (tmp_path / "report.txt").read_text().startswith("=")


def test_run_doctor_reports_a_broken_model(digits):
    X, y = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 8), Scale(8, factor=3.0), Tanh(), Dense(8, 10))
    lines = []
    report = D.run_doctor(X[:300], y[:300], model=model, print_fn=lines.append)
    assert not report.passed
    assert not report.results["gradient_check"].passed
    assert "FAIL  gradient_check" in lines[0]


def test_run_doctor_skips_model_checks_on_nan(digits):
    X, y = digits
    X = X[:200].copy()
    X[3, 3] = np.nan
    report = D.run_doctor(X, y[:200], print_fn=None)
    assert not report.passed and set(report.results) == {"data"}
    assert "nonfinite" in report.skipped["overfit_small_batch"]


def _cli(argv):
    parser = argparse.ArgumentParser(prog="fastnn")
    D.doctor.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def _write_csv(path, X, y):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(X.shape[1])] + ["label"])
        for row, label in zip(X, y):
            w.writerow([f"{v:g}" for v in row] + [label])


def test_doctor_command_line(tmp_path, capsys):
    X, y = load_digits()
    data = tmp_path / "digits.csv"
    _write_csv(data, X[:300], y[:300])
    out = tmp_path / "out"
    assert _cli(["doctor", "--data", str(data), "--target", "label", "--out", str(out)]) == 0
    assert "fastnn doctor: PASS" in capsys.readouterr().out
    assert (out / "report.txt").exists()
    # a saved model with the right input size is used
    fastnn.seed(0)
    model_path = tmp_path / "m.safetensors"
    fastnn.io.save(Sequential(Dense(64, 32), ReLU(), Dense(32, 10)), model_path)
    assert _cli(["doctor", "--data", str(data), "--model", str(model_path)]) in (0, 1)
    assert "Sequential with 2,410 parameters" in capsys.readouterr().out


def test_doctor_command_line_bad_input(tmp_path, capsys):
    X, y = load_digits()
    data = tmp_path / "d.csv"
    _write_csv(data, X[:50], y[:50])
    cases = [
        ["doctor", "--data", str(tmp_path / "missing.csv")],
        ["doctor", "--data", str(data), "--target", "nope"],
        ["doctor", "--data", str(data), "--model", str(tmp_path / "missing.safetensors")],
    ]
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    cases.append(["doctor", "--data", str(data), "--model", str(junk)])
    wrong = tmp_path / "wrong.safetensors"
    fastnn.io.save(Sequential(Dense(10, 3)), wrong)
    cases.append(["doctor", "--data", str(data), "--model", str(wrong)])
    for argv in cases:
        assert _cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fastnn doctor: error: ") and err.count("\n") == 1, err


# -- reprs ---------------------------------------------------------------------------------
def test_reprs_are_short_tables_with_verdicts(digits):
    X, y = digits
    fastnn.seed(0)
    model = Sequential(Dense(64, 16), ReLU(), Dense(16, 10))
    r = D.gradient_check(model, CrossEntropyLoss(), X[:8], y[:8], max_entries=4)
    text = repr(r)
    assert text.startswith("<gradient check>") and "PASS" in text and "0.weight" in text
    assert len(text.splitlines()) < 15
    h = D.hessian_spectrum(Sequential(Dense(64, 2)), CrossEntropyLoss(), X[:50], y[:50] % 2)
    assert "kind: " in repr(h) and "eigenvalues" in repr(h)
