"""Module system: state_dict layout and torch interchange, load_state_dict errors,
apply/train/eval/zero_grad, parameter naming and assignment, astype, predict, summary,
fastnn.init and fastnn.seed."""

import math
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import init

N_IN, N_HID, N_OUT = 12, 9, 4


def fastnn_model(p=0.0, dtype=np.float32):
    return fastnn.Sequential(
        fastnn.Dense(N_IN, N_HID, dtype=dtype),
        fastnn.BatchNorm1d(N_HID, dtype=dtype),
        fastnn.ReLU(),
        fastnn.Dropout(p),
        fastnn.Dense(N_HID, N_OUT, dtype=dtype),
    )


def torch_model(torch, p=0.0):
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(N_IN, N_HID),
        nn.BatchNorm1d(N_HID),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(N_HID, N_OUT),
    )


def randomize_bn(torch, tm):
    """Give BN non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(0)
    bn = tm[1]
    with torch.no_grad():
        bn.weight.copy_(1 + 0.3 * torch.randn(N_HID, generator=g))
        bn.bias.copy_(0.2 * torch.randn(N_HID, generator=g))
        bn.running_mean.copy_(0.5 * torch.randn(N_HID, generator=g))
        bn.running_var.copy_(0.5 + torch.rand(N_HID, generator=g))
        bn.num_batches_tracked.fill_(7)


def data(n=32, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=(n, N_IN)).astype(dtype)


# -- state_dict and torch interchange ----------------------------------------------------
def test_state_dict_layout_equals_torch():
    torch = pytest.importorskip("torch")
    tsd = torch_model(torch, 0.5).state_dict()
    fsd = fastnn_model(0.5).state_dict()
    assert list(fsd) == list(tsd)
    assert "1.num_batches_tracked" in fsd
    for k in tsd:
        assert fsd[k].shape == tuple(tsd[k].shape), k
    assert fsd["1.num_batches_tracked"].dtype == np.int64
    assert fsd["0.weight"].dtype == np.float32


def test_named_parameters_equal_torch():
    torch = pytest.importorskip("torch")
    names = [n for n, _ in torch_model(torch).named_parameters()]
    model = fastnn_model()
    assert [n for n, _ in model.named_parameters()] == names
    assert [p for _, p in model.named_parameters()] == model.parameters()
    assert [p.shape for p in model.parameters()] == [
        tuple(p.shape) for p in torch_model(torch).parameters()
    ]


class Scaled(fastnn.Module):
    """A user-defined module: x + scale * inner(x), with a hand-written backward."""

    def __init__(self, n):
        super().__init__()
        self.scale = fastnn.Parameter(np.full(n, 0.5), name="scale")
        self.inner = fastnn.Dense(n, n, dtype=np.float64)

    def forward(self, x):
        self._h = self.inner.forward(x)
        return x + self._h * self.scale.data

    def backward(self, g):
        self.scale.grad[...] += (g * self._h).sum(axis=0)
        return g + self.inner.backward(g * self.scale.data)


def test_user_defined_module_inside_sequential():
    fastnn.seed(0)
    model = fastnn.Sequential(
        fastnn.Dense(3, 4, dtype=np.float64), Scaled(4), fastnn.Dense(4, 2, dtype=np.float64)
    )
    names = [
        "0.weight",
        "0.bias",
        "1.scale",
        "1.inner.weight",
        "1.inner.bias",
        "2.weight",
        "2.bias",
    ]
    assert [n for n, _ in model.named_parameters()] == names
    assert list(model.state_dict()) == names
    model.eval()
    assert not model[1].training and not model[1].inner.training
    model.train()
    opt = fastnn.optim.SGD(model.parameters(), lr=0.1)
    trainer = fastnn.Trainer(model, fastnn.losses.CrossEntropyLoss(), opt)
    r = np.random.default_rng(0)
    X, y = r.normal(size=(16, 3)), r.integers(0, 2, 16)
    scale = model[1].scale.data.copy()
    losses = [trainer.train_step(X, y) for _ in range(5)]
    assert losses[-1] < losses[0]
    assert not np.array_equal(model[1].scale.data, scale)


def test_tied_parameters_are_listed_once():
    """A Parameter shared by two layers appears once in parameters() (so an optimizer
    accepts the model) and under both keys in state_dict(), as in torch."""
    a, b = fastnn.Dense(4, 4), fastnn.Dense(4, 4)
    b.weight = a.weight
    model = fastnn.Sequential(a, b)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    fastnn.optim.SGD(model.parameters(), lr=0.1)
    assert b.weight.data is a.weight.data  # still shared after the move to the buffer
    torch = pytest.importorskip("torch")
    ta, tb = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    tb.weight = ta.weight
    tm = torch.nn.Sequential(ta, tb)
    assert [n for n, _ in tm.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(tm.state_dict()) == list(model.state_dict())


def test_state_dict_returns_copies():
    model = fastnn_model()
    sd = model.state_dict()
    sd["0.weight"][...] = 123.0
    sd["1.running_mean"][...] = 123.0
    assert not (model[0].weight.data == 123.0).any()
    assert not (model[1].running_mean == 123.0).any()


def _load_from_torch(torch, tm, fm):
    fm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_weights_give_the_same_outputs_in_eval_mode(dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch_model(torch, 0.5)
    randomize_bn(torch, tm)
    fm = fastnn_model(0.5)
    if dtype == np.float64:
        tm = tm.double()
        fm.astype(np.float64)
    _load_from_torch(torch, tm, fm)
    assert int(fm[1].num_batches_tracked) == 7
    tm.eval()
    fm.eval()
    x = data(40, dtype=dtype)
    with torch.no_grad():
        expected = tm(torch.from_numpy(x)).numpy()
    got = fm.forward(x)
    assert got.dtype == dtype
    rtol, atol = (1e-5, 1e-5) if dtype == np.float32 else (1e-12, 1e-13)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    np.testing.assert_allclose(fm.predict(x, batch_size=7), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_weights_give_the_same_outputs_and_gradients_in_train_mode(dtype):
    """Batch statistics, running-stat update (unbiased variance) and backward."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tm = torch_model(torch, 0.0)
    randomize_bn(torch, tm)
    fm = fastnn_model(0.0)
    if dtype == np.float64:
        tm = tm.double()
        fm.astype(np.float64)
    _load_from_torch(torch, tm, fm)
    tm.train()
    fm.train()
    rtol, atol = (2e-5, 2e-5) if dtype == np.float32 else (1e-11, 1e-12)
    for step in range(3):
        x = data(24, seed=step, dtype=dtype)
        g = np.random.default_rng(10 + step).normal(size=(24, N_OUT)).astype(dtype)
        xt = torch.from_numpy(x).requires_grad_(True)
        out_t = tm(xt)
        out_t.backward(torch.from_numpy(g))
        fm.zero_grad()
        out_f = fm.forward(x)
        gx_f = fm.backward(g)
        np.testing.assert_allclose(out_f, out_t.detach().numpy(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(gx_f, xt.grad.numpy(), rtol=rtol, atol=atol)
        for (name, p), (tname, tp) in zip(fm.named_parameters(), tm.named_parameters()):
            assert name == tname
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
            tp.grad = None
    tsd = tm.state_dict()
    for k, v in fm.state_dict().items():
        np.testing.assert_allclose(v, tsd[k].numpy(), rtol=rtol, atol=atol, err_msg=k)
    assert int(fm[1].num_batches_tracked) == 7 + 3


def test_state_dict_round_trip_between_fastnn_models():
    src, dst = fastnn_model(), fastnn_model()
    src.train()
    src.forward(data(16))  # moves the running statistics
    dst.load_state_dict(src.state_dict())
    for (k, a), (k2, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k == k2 and np.array_equal(a, b)
    x = data(8, seed=3)
    assert np.array_equal(src.eval().forward(x), dst.eval().forward(x))


def test_load_state_dict_casts_to_the_model_dtype():
    src = fastnn_model(dtype=np.float64)
    dst = fastnn_model()
    dst.load_state_dict(src.state_dict())
    assert dst[0].weight.dtype == np.float32
    np.testing.assert_array_equal(dst[0].weight.data, src[0].weight.data.astype(np.float32))


def test_load_state_dict_strict_errors():
    model = fastnn_model()
    before = model.state_dict()
    sd = fastnn_model().state_dict()  # other values, so a partial load would show
    missing = dict(sd)
    del missing["1.running_var"]
    with pytest.raises(KeyError, match="1.running_var"):
        model.load_state_dict(missing)
    unexpected = dict(sd, **{"5.weight": np.zeros(3, np.float32)})
    with pytest.raises(KeyError, match="5.weight"):
        model.load_state_dict(unexpected)
    wrong = dict(sd)
    wrong["4.weight"] = np.zeros((N_HID, N_OUT), np.float32)  # transposed
    with pytest.raises(ValueError, match="4.weight"):
        model.load_state_dict(wrong)
    for k, v in model.state_dict().items():  # failed loads changed nothing
        assert np.array_equal(v, before[k]), k
    # strict=False loads what matches and ignores the rest
    partial = {"0.bias": np.full(N_HID, 2.0), "9.extra": np.zeros(1)}
    model.load_state_dict(partial, strict=False)
    assert np.all(model[0].bias.data == 2.0)
    assert np.array_equal(model[0].weight.data, before["0.weight"])


def test_load_state_dict_keeps_optimizer_views_valid():
    model = fastnn_model()
    opt = fastnn.optim.SGD(model.parameters(), lr=0.1)
    views = [p.data for p in model.parameters()]
    model.load_state_dict(fastnn_model().state_dict())
    assert all(p.data is v for p, v in zip(model.parameters(), views))
    opt.step()  # still the optimizer's buffer: no RuntimeError


# -- structure, modes, gradients ---------------------------------------------------------
def test_apply_visits_every_submodule_with_the_seed_note_pattern():
    fastnn.seed(0)
    model = fastnn.Sequential(
        fastnn.Dense(64, 128),
        fastnn.ReLU(),
        fastnn.Sequential(fastnn.Dense(128, 128), fastnn.Tanh()),
        fastnn.Dense(128, 10),
    )
    before = [m.weight.data.copy() for m in model.modules() if isinstance(m, fastnn.Dense)]
    visited = []

    def weights_init(m):
        visited.append(m)
        if isinstance(m, fastnn.Dense):
            fastnn.init.xavier_normal_(m.weight)
            fastnn.init.zeros_(m.bias)

    assert model.apply(weights_init) is model
    assert len(visited) == 7 and {id(m) for m in visited} == {id(m) for m in model.modules()}
    dense = [m for m in model.modules() if isinstance(m, fastnn.Dense)]
    assert len(dense) == 3
    for m, b in zip(dense, before):
        assert not np.array_equal(m.weight.data, b)
        assert not m.bias.data.any()
        expected_std = math.sqrt(2.0 / (m.in_features + m.out_features))
        assert abs(m.weight.data.std() / expected_std - 1) < 0.15


def test_train_and_eval_propagate():
    model = fastnn.Sequential(
        fastnn.Dense(3, 4),
        fastnn.Sequential(fastnn.BatchNorm1d(4), fastnn.Dropout(0.3)),
        fastnn.Dense(4, 2),
    )
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert len(model.modules()) == 6
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.train(False)
    assert not any(m.training for m in model.modules())


def test_zero_grad_on_a_model():
    model = fastnn_model()
    model.forward(data(8))
    model.backward(np.ones((8, N_OUT), np.float32))
    assert any(p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert not any(p.grad.any() for p in model.parameters())


def test_parameter_data_assignment_copies_in_place():
    p = fastnn.Parameter(np.zeros((2, 3), np.float32), name="w")
    arr = p.data
    src = np.arange(6.0).reshape(2, 3)
    p.data = src
    assert p.data is arr and p.dtype == np.float32
    np.testing.assert_array_equal(p.data, src)
    src[0, 0] = 99.0  # no aliasing with the source
    assert p.data[0, 0] == 0.0
    p.grad = np.ones((2, 3))
    assert p.grad.dtype == np.float32 and p.grad.sum() == 6
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        p.data = np.zeros((3, 2))
    with pytest.raises(ValueError):
        p.grad = np.zeros(6)
    with pytest.raises(ValueError):
        fastnn.Parameter(np.zeros(3, np.int64))
    np.testing.assert_array_equal(p.data, np.arange(6.0).reshape(2, 3))


def test_parameter_copies_its_input():
    src = np.ones(4)
    p = fastnn.Parameter(src)
    src[0] = 5
    assert p.data[0] == 1 and p.grad.shape == (4,) and not p.grad.any()
    assert p.requires_grad


def test_astype_converts_parameters_buffers_and_outputs():
    model = fastnn_model(0.5)
    sd32 = model.state_dict()
    assert model.astype(np.float64) is model
    assert model.dtype == np.float64
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            assert v.dtype == np.int64
        else:
            assert v.dtype == np.float64, k
            assert np.array_equal(v, sd32[k].astype(np.float64))
    for p in model.parameters():
        assert p.grad.dtype == np.float64
    x = data(10, dtype=np.float64)
    assert model.forward(x).dtype == np.float64
    model.astype(np.float32)
    assert model.forward(x).dtype == np.float32
    with pytest.raises(ValueError):
        model.astype(np.int32)


# -- predict ----------------------------------------------------------------------------
def test_predict_equals_eval_forward_and_restores_mode():
    fastnn.seed(0)
    model = fastnn_model(0.5)
    model.train()
    model.forward(data(32, seed=1))  # non-trivial running statistics
    rm = model[1].running_mean.copy()
    x = data(50, seed=2)  # 50 = 7 * 7 + 1: a last partial batch of one row
    pred = model.predict(x, batch_size=7)
    assert model.training and all(m.training for m in model.modules())
    assert np.array_equal(model[1].running_mean, rm)
    assert pred.shape == (50, N_OUT) and pred.dtype == np.float32
    model.eval()
    expected = model.forward(x)
    np.testing.assert_allclose(pred, expected, rtol=1e-6, atol=1e-6)
    pred_eval = model.predict(x, batch_size=64)
    assert not model.training
    np.testing.assert_allclose(pred_eval, expected, rtol=1e-6, atol=1e-6)
    # the returned array is not a reused workspace
    keep = pred.copy()
    model.predict(data(50, seed=3), batch_size=7)
    assert np.array_equal(pred, keep)


def test_predict_accepts_strided_and_integer_input():
    model = fastnn_model().eval()
    x = data(20)
    big = np.zeros((20, 2 * N_IN), np.float64)
    big[:, ::2] = x
    np.testing.assert_allclose(model.predict(big[:, ::2]), model.predict(x), rtol=1e-6)
    xi = np.arange(20 * N_IN).reshape(20, N_IN) % 5
    np.testing.assert_allclose(model.predict(xi), model.predict(xi.astype(np.float32)))


def test_predict_rejects_bad_input():
    model = fastnn_model()
    with pytest.raises(ValueError):
        model.predict(np.zeros((0, N_IN), np.float32))
    with pytest.raises(ValueError):
        model.predict(np.zeros(N_IN, np.float32))
    with pytest.raises(ValueError):
        model.predict(np.zeros((3, N_IN + 1), np.float32))
    with pytest.raises(ValueError):
        model.predict(data(4), batch_size=0)
    assert model.training


# -- summary ----------------------------------------------------------------------------
def test_summary_of_the_reference_mlp_bn():
    model = fastnn.Sequential(
        fastnn.Dense(784, 512),
        fastnn.BatchNorm1d(512),
        fastnn.ReLU(),
        fastnn.Dropout(0.5),
        fastnn.Dense(512, 512),
        fastnn.BatchNorm1d(512),
        fastnn.ReLU(),
        fastnn.Dropout(0.5),
        fastnn.Dense(512, 10),
    )
    assert sum(p.size for p in model.parameters()) == 671_754
    printed = []
    text = model.summary(print_fn=printed.append)
    assert printed == [text]
    assert "671,754" in text
    for name in ("Dense", "BatchNorm1d", "ReLU", "Dropout"):
        assert name in text
    assert text.count("Dense") == 3 and text.count("BatchNorm1d") == 2
    assert "401,920" in text and "262,656" in text and "5,130" in text
    assert "(None, 512)" in text and "(None, 10)" in text
    assert model.training  # summary restores the mode


def test_summary_counts_trainable_parameters():
    model = fastnn.Sequential(fastnn.Dense(4, 3), fastnn.ReLU(), fastnn.Dense(3, 2))
    model[0].freeze()
    text = model.summary(print_fn=None)
    assert "Total parameters: 23" in text and "trainable 8" in text


# -- fastnn.init ------------------------------------------------------------------------
BIG = (600, 400)  # fan_out, fan_in


def _big():
    return np.empty(BIG, np.float64)


def test_xavier_statistics():
    fastnn.seed(0)
    w = init.xavier_normal_(_big(), gain=2.0)
    std = 2.0 * math.sqrt(2.0 / sum(BIG))
    assert abs(w.mean()) < 0.01 * std  # the std of the mean is std / 490
    assert abs(w.std() / std - 1) < 0.01
    w = init.xavier_uniform_(_big())
    a = math.sqrt(6.0 / sum(BIG))
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.999 * a
    assert abs(w.std() / (a / math.sqrt(3)) - 1) < 0.01
    assert abs(w.mean()) < 0.01 * a


@pytest.mark.parametrize("mode,fan", [("fan_in", BIG[1]), ("fan_out", BIG[0])])
def test_kaiming_statistics(mode, fan):
    fastnn.seed(1)
    std = math.sqrt(2.0) / math.sqrt(fan)
    w = init.kaiming_normal_(_big(), mode=mode, nonlinearity="relu")
    assert abs(w.std() / std - 1) < 0.01 and abs(w.mean()) < 0.01 * std
    w = init.kaiming_uniform_(_big(), mode=mode, nonlinearity="relu")
    bound = math.sqrt(3.0) * std
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound
    assert abs(w.std() / std - 1) < 0.01
    # leaky_relu with a = sqrt(5) is torch.nn.Linear's default: bound 1/sqrt(fan_in)
    w = init.kaiming_uniform_(_big(), a=math.sqrt(5))
    assert np.abs(w).max() <= 1 / math.sqrt(BIG[1])
    assert np.abs(w).max() > 0.999 / math.sqrt(BIG[1])


def test_init_works_on_parameters_and_returns_them():
    p = fastnn.Parameter(np.zeros((30, 20), np.float32))
    arr = p.data
    assert init.kaiming_normal_(p) is p
    assert p.data is arr and p.data.std() > 0


def test_dense_default_init_matches_torch_linear_bounds():
    fastnn.seed(2)
    layer = fastnn.Dense(300, 200)
    bound = 1 / math.sqrt(300)
    for arr in (layer.weight.data, layer.bias.data):
        assert np.abs(arr).max() <= bound and np.abs(arr).max() > 0.9 * bound
    assert abs(layer.weight.data.std() / (bound / math.sqrt(3)) - 1) < 0.02


@pytest.mark.parametrize(
    "name,param",
    [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("selu", None),
    ],
)
def test_calculate_gain_equals_torch(name, param):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(name, param) == pytest.approx(
        torch.nn.init.calculate_gain(name, param), rel=1e-12
    )


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError):
        init.calculate_gain("swishy")


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (40, 40), (6, 4, 3)])
def test_orthogonal(shape):
    fastnn.seed(3)
    w = init.orthogonal_(np.empty(shape), gain=1.5)
    q = w.reshape(shape[0], -1) / 1.5
    rows, cols = q.shape
    if rows <= cols:
        np.testing.assert_allclose(q @ q.T, np.eye(rows), atol=1e-12)
    else:
        np.testing.assert_allclose(q.T @ q, np.eye(cols), atol=1e-12)


def test_trunc_normal_within_bounds():
    fastnn.seed(4)
    w = init.trunc_normal_(_big(), mean=0.5, std=1.0, a=-0.5, b=1.0)
    assert w.min() >= -0.5 and w.max() <= 1.0
    assert w.min() < -0.49 and w.max() > 0.99  # the whole interval is used
    w = init.trunc_normal_(_big(), std=0.02)
    assert np.abs(w).max() <= 2.0 and abs(w.std() / 0.02 - 1) < 0.01
    with pytest.raises(ValueError):
        init.trunc_normal_(_big(), a=1.0, b=-1.0)


def test_constant_init_warns_for_weight_matrices_only():
    with pytest.warns(UserWarning, match="same"):
        init.constant_(np.empty((4, 3)), 0.5)
    with pytest.warns(UserWarning):
        init.zeros_(fastnn.Parameter(np.empty((4, 3))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = init.constant_(np.empty(4), 0.5)
        init.zeros_(np.empty(3))
    assert np.all(b == 0.5)


def test_dense_unknown_init_lists_valid_names():
    with pytest.raises(ValueError) as exc:
        fastnn.Dense(3, 2, init="unknown")
    msg = str(exc.value)
    assert "unknown" in msg
    for name in ("xavier_uniform", "kaiming_normal", "orthogonal"):
        assert name in msg


@pytest.mark.parametrize(
    "name",
    [
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "orthogonal",
        "trunc_normal",
    ],
)
def test_dense_named_init_zeroes_the_bias(name):
    fastnn.seed(5)
    layer = fastnn.Dense(20, 10, init=name)
    assert layer.weight.data.std() > 0 and not layer.bias.data.any()


# -- fastnn.seed ------------------------------------------------------------------------
def test_seed_makes_dense_init_reproducible():
    fastnn.seed(42)
    a = fastnn.Dense(10, 7)
    fastnn.seed(42)
    b = fastnn.Dense(10, 7)
    fastnn.seed(43)
    c = fastnn.Dense(10, 7)
    assert np.array_equal(a.weight.data, b.weight.data)
    assert np.array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


def _masks(seed, calls=2, shape=(64, 100)):
    fastnn.seed(seed)
    d = fastnn.Dropout(0.5)
    x = np.ones(shape, np.float32)
    return [d.forward(x) for _ in range(calls)]


def test_seed_makes_dropout_masks_reproducible():
    a1, a2 = _masks(7)
    b1, b2 = _masks(7)
    c1, _ = _masks(8)
    assert np.array_equal(a1, b1) and np.array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # each call draws a new mask
    assert not np.array_equal(a1, c1)
    assert set(np.unique(a1)) == {0.0, 2.0}  # inverted scaling by 1 / (1 - p)
    assert abs((a1 == 0).mean() - 0.5) < 0.03


def test_dropout_masks_do_not_depend_on_thread_count():
    n = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        one = _masks(9, calls=1, shape=(512, 300))[0]
        fastnn.set_num_threads(2)
        two = _masks(9, calls=1, shape=(512, 300))[0]
    finally:
        fastnn.set_num_threads(n)
    assert np.array_equal(one, two)


def test_seed_rejects_bad_values():
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError):
            fastnn.seed(bad)
