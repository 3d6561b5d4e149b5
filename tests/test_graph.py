"""The functional API and per-call state: Input/Model, merge layers, Residual, layers
called several times per step (shared weights), any Module in the Trainer, save/load
of graphs, hooks and the parameter store."""

import numpy as np
import pytest

import fastnn
from fastnn import Input, Model
from fastnn.layers import Add, Concatenate, Multiply, Residual
from fastnn.losses import CrossEntropyLoss, MSELoss


def _data(n=240, d=6, classes=3, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    y = (np.abs(X[:, 0]) + X[:, 1] > 0.8).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    return X, np.minimum(y, classes - 1)


# -- the models of the issue, built in fastnn and in torch with the same weights ---------
def residual_mlp():
    fastnn.seed(1)
    x = Input((6,))
    h = fastnn.Tanh()(fastnn.Dense(6, 8, dtype=np.float64)(x))
    f = fastnn.Dense(8, 8, dtype=np.float64)(fastnn.ReLU()(fastnn.Dense(8, 8, dtype=np.float64)(h)))
    out = fastnn.Dense(8, 3, dtype=np.float64)(Add()([h, f]))
    return Model(x, out)


def two_branch():
    fastnn.seed(2)
    x = Input((6,), dtype=np.float64)
    a = fastnn.Sigmoid()(fastnn.Dense(6, 5, dtype=np.float64)(x))
    b = fastnn.Tanh()(fastnn.Dense(6, 4, dtype=np.float64)(x))
    out = fastnn.Dense(9, 3, dtype=np.float64)(Concatenate()([a, b]))
    return Model(x, out)


def two_inputs():
    fastnn.seed(3)
    a, b = Input((4,), name="left"), Input((2,), name="right")
    ha = fastnn.ReLU()(fastnn.Dense(4, 5, dtype=np.float64)(a))
    hb = fastnn.Dense(2, 5, dtype=np.float64)(b)
    out = fastnn.Dense(5, 3, dtype=np.float64)(Multiply()([ha, hb]))
    return Model([a, b], out)


def shared_dense():
    fastnn.seed(4)
    d = fastnn.Dense(6, 6, dtype=np.float64)
    return fastnn.Sequential(d, fastnn.Tanh(), d, fastnn.Dense(6, 3, dtype=np.float64))


def residual_in_sequential():
    fastnn.seed(5)
    return fastnn.Sequential(
        fastnn.Dense(6, 8, dtype=np.float64),
        Residual(
            fastnn.Dense(8, 8, dtype=np.float64),
            fastnn.ReLU(),
            fastnn.Dense(8, 8, dtype=np.float64),
        ),
        fastnn.ReLU(),
        fastnn.Dense(8, 3, dtype=np.float64),
    )


def _inputs(model, X):
    return [X[:, :4], X[:, 4:]] if isinstance(model, Model) and len(model.inputs) == 2 else X


def _torch_forward(torch, model, xs):
    """The same computation in torch, from fastnn's weights (layer by layer)."""
    T = {}

    def lin(layer):
        key = id(layer)
        if key not in T:
            m = torch.nn.Linear(layer.in_features, layer.out_features).double()
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.weight.data))
                m.bias.copy_(torch.from_numpy(layer.bias.data))
            T[key] = m
        return T[key]

    acts = {fastnn.ReLU: torch.relu, fastnn.Tanh: torch.tanh, fastnn.Sigmoid: torch.sigmoid}

    def run(module, v):
        if isinstance(module, fastnn.Dense):
            return lin(module)(v)
        if type(module) in acts:
            return acts[type(module)](v)
        if isinstance(module, Add):
            return v[0] + v[1]
        if isinstance(module, Multiply):
            return v[0] * v[1]
        if isinstance(module, Concatenate):
            return torch.cat(v, dim=-1)
        if isinstance(module, Residual):
            h = v
            for layer in module.layers:
                h = run(layer, h)
            return v + h
        raise AssertionError(type(module))

    if isinstance(model, fastnn.Sequential):
        h = xs[0]
        for layer in model.layers:
            h = run(layer, h)
        return h, T
    vals = {id(t): x for t, x in zip(model.inputs, xs)}
    for node in model._nodes:
        args = [vals[id(t)] for t in node.inputs]
        vals[id(node.outputs[0])] = run(node.module, args if node.multi else args[0])
    return vals[id(model.outputs[0])], T


BUILDERS = [residual_mlp, two_branch, two_inputs, shared_dense, residual_in_sequential]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_forward_and_every_gradient_equal_torch(build):
    torch = pytest.importorskip("torch")
    model = build()
    X, y = _data()
    xs = _inputs(model, X)
    xs_list = xs if isinstance(xs, list) else [xs]
    out = model.forward(xs)
    loss = CrossEntropyLoss()
    value = loss(out, y)
    model.zero_grad()
    gx = model.backward(loss.backward())
    tx = [torch.tensor(v, requires_grad=True) for v in xs_list]
    tout, lins = _torch_forward(torch, model, tx)
    tloss = torch.nn.functional.cross_entropy(tout, torch.from_numpy(y))
    tloss.backward()
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-13)
    assert value == pytest.approx(tloss.item(), rel=1e-12)
    gxs = gx if isinstance(gx, list) else [gx]
    for a, b in zip(gxs, tx):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-10, atol=1e-13)
    dense = [m for m in model.modules() if isinstance(m, fastnn.Dense)]
    assert len(lins) == len(dense)
    for layer in dense:
        t = lins[id(layer)]
        np.testing.assert_allclose(layer.weight.grad, t.weight.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(layer.bias.grad, t.bias.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_trains_saves_and_loads_without_model(build, tmp_path):
    model = build()
    X, y = _data(n=600)
    xs = _inputs(model, X)
    trainer = fastnn.Trainer(
        model, CrossEntropyLoss(), fastnn.optim.Adam(model.parameters(), lr=0.02)
    )
    before = trainer.evaluate(xs, y)["accuracy"]
    history = trainer.fit(xs, y, epochs=30, batch_size=32, verbose=0)
    after = trainer.evaluate(xs, y)["accuracy"]
    assert history["loss"][-1] < history["loss"][0]
    assert after > max(before, 0.85)
    path = tmp_path / "model.safetensors"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(xs), model.predict(xs))
    assert list(loaded.state_dict()) == list(model.state_dict())


def test_shared_layer_gradients_sum_and_match_finite_differences(num_grad):
    """The issue's case: Sequential(d, Tanh(), d) used to train on gradients wrong by up
    to 3.1; each call now keeps its own context."""
    fastnn.seed(0)
    d = fastnn.Dense(3, 3, dtype=np.float64)
    model = fastnn.Sequential(d, fastnn.Tanh(), d)
    x = np.random.default_rng(1).standard_normal((5, 3))
    R = np.random.default_rng(2).standard_normal((5, 3))
    model.forward(x)
    model.zero_grad()
    model.backward(R)

    def f(_):
        return float(np.sum(model.forward(x) * R))

    np.testing.assert_allclose(d.weight.grad, num_grad(f, d.weight.data), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d.bias.grad, num_grad(f, d.bias.data), rtol=1e-6, atol=1e-8)
    assert len(model.parameters()) == 2


def test_public_calls_keep_their_own_input():
    """d(x); x[:] = 123; d.backward(g) uses the x of the call."""
    d = fastnn.Dense(4, 2, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((3, 4))
    x0 = x.copy()
    g = np.ones((3, 2))
    d.forward(x)
    x[:] = 123
    d.zero_grad()
    d.backward(g)
    np.testing.assert_allclose(d.weight.grad, g.T @ x0)


def test_public_calls_work_as_a_stack():
    d = fastnn.Dense(4, 4, dtype=np.float64)
    r = np.random.default_rng(0)
    x1, x2, g1, g2 = (r.standard_normal((3, 4)) for _ in range(4))
    d.forward(x1)
    d.forward(x2)
    d.zero_grad()
    np.testing.assert_allclose(d.backward(g2), g2 @ d.weight.data)
    np.testing.assert_allclose(d.backward(g1), g1 @ d.weight.data)
    np.testing.assert_allclose(d.weight.grad, g1.T @ x1 + g2.T @ x2)
    with pytest.raises(RuntimeError, match="no forward call is waiting"):
        d.backward(g1)


@pytest.mark.parametrize(
    "layer,shapes",
    [
        (Add(), [(4, 3), (4, 3), (4, 3)]),
        (Multiply(), [(4, 3), (4, 3)]),
        (Multiply(), [(2, 5), (2, 5), (2, 5)]),
        (Concatenate(), [(4, 2), (4, 3)]),
        (Concatenate(axis=1), [(2, 3, 2), (2, 1, 2)]),
        (Concatenate(axis=-1), [(2, 3, 2), (2, 3, 4), (2, 3, 1)]),
    ],
    ids=["add3", "mul2", "mul3", "concat", "concat_axis1", "concat3"],
)
def test_merge_layers_match_finite_differences(layer, shapes, num_grad):
    r = np.random.default_rng(0)
    xs = [r.standard_normal(s) for s in shapes]
    R = r.standard_normal(layer.forward(xs).shape)
    grads = layer.backward(R)
    for i, x in enumerate(xs):

        def f(v, i=i):
            args = list(xs)
            args[i] = v
            return float(np.sum(layer.forward(args) * R))

        np.testing.assert_allclose(grads[i], num_grad(f, x.copy()), rtol=1e-6, atol=1e-8)


def test_residual_matches_finite_differences(num_grad):
    fastnn.seed(0)
    block = Residual(fastnn.Dense(5, 5, dtype=np.float64), fastnn.Tanh())
    x = np.random.default_rng(0).standard_normal((4, 5))
    R = np.random.default_rng(1).standard_normal((4, 5))
    block.forward(x)
    block.zero_grad()
    gx = block.backward(R)
    np.testing.assert_allclose(
        gx, num_grad(lambda v: float(np.sum(block.forward(v) * R)), x.copy()), rtol=1e-6, atol=1e-8
    )
    w = block[0].weight
    np.testing.assert_allclose(
        w.grad,
        num_grad(lambda _: float(np.sum(block.forward(x) * R)), w.data),
        rtol=1e-6,
        atol=1e-8,
    )


def test_model_names_keys_summary_and_get_layer():
    x = Input((4,))
    d1 = fastnn.Dense(4, 4)
    h = fastnn.ReLU()(d1(x))
    named = fastnn.Dense(4, 2, name="head")
    model = Model(x, named(fastnn.Dense(4, 4)(h)))
    assert [m.name for m in model.layers] == ["dense", "relu", "dense_1", "head"]
    assert list(model.state_dict()) == [
        "dense.weight",
        "dense.bias",
        "dense_1.weight",
        "dense_1.bias",
        "head.weight",
        "head.bias",
    ]
    assert model.get_layer("head") is named
    with pytest.raises(KeyError, match="head"):
        model.get_layer("nope")
    text = model.summary(print_fn=None)
    assert "head (Dense)" in text and "(None, 2)" in text and "dense_1" in text
    assert "Total parameters: 50" in text


def test_model_construction_errors():
    x = Input((4,))
    a = fastnn.Dense(4, 4, name="same")(x)
    with pytest.raises(ValueError, match="unique"):
        Model(x, fastnn.Dense(4, 4, name="same")(a))
    other = Input((4,))
    with pytest.raises(ValueError, match="not among the model's inputs"):
        Model(x, Add()([a, fastnn.Dense(4, 4)(other)]))
    with pytest.raises(ValueError, match="cannot take input"):
        fastnn.Dense(3, 2)(x)
    with pytest.raises(ValueError, match="same shape"):
        Add()([x, Input((5,))])
    with pytest.raises(ValueError, match="name"):
        fastnn.Dense(2, 2, name="a.b")
    model = Model(x, fastnn.Dense(4, 2)(x))
    with pytest.raises(ValueError, match=r"expects shape \(batch,\) \+ \(4,\)"):
        model.forward(np.zeros((3, 5)))


def test_user_module_trains_with_trainer_and_predicts():
    class Res(fastnn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.act = fastnn.Dense(6, 6, dtype=np.float64), fastnn.Tanh()
            self.head = fastnn.Dense(6, 3, dtype=np.float64)

        def forward(self, x):
            return self.head(x + self.act(self.inner(x)))

        def backward(self, g):
            gh = self.head.backward(g)
            return gh + self.inner.backward(self.act.backward(gh))

    fastnn.seed(0)
    model = Res()
    X, y = _data(n=600)
    trainer = fastnn.Trainer(
        model, CrossEntropyLoss(), fastnn.optim.Adam(model.parameters(), lr=0.02)
    )
    trainer.fit(X, y, epochs=30, batch_size=32, verbose=0)
    assert trainer.evaluate(X, y)["accuracy"] > 0.85
    assert model.predict(X).shape == (600, 3)


def test_store_hooks_run_in_documented_order():
    model = fastnn.Sequential(
        fastnn.Dense(3, 2, dtype=np.float64, regularizer=fastnn.regularizers.L2(0.1))
    )
    opt = fastnn.optim.SGD(model.parameters(), lr=0.1)
    trainer = fastnn.Trainer(model, MSELoss(), opt, clip_grad_norm=1e-3)
    store = model.parameter_store()
    assert store is opt._buffer.store  # the optimizer's store is the model's
    calls = []
    store.register_hook("after_step", lambda s, **kw: calls.append("after_step"))
    store.register_hook("before_step", lambda s, **kw: calls.append("before_step"))
    store.register_hook(
        "after_backward",
        lambda s, **kw: calls.append(
            ("reduce", trainer._step_info["penalty"] > 0, trainer._step_info["grad_norm"])
        ),
        order=200,
    )
    store.register_hook(
        "after_backward",
        lambda s, **kw: calls.append(("late", trainer._step_info["grad_norm"] is not None)),
    )
    X = np.ones((4, 3))
    trainer.train_step(X, np.zeros((4, 2)))
    assert calls == [("reduce", True, None), ("late", True), "before_step", "after_step"]
    grad_norm = np.sqrt(sum(float(np.sum(p.grad**2)) for p in model.parameters()))
    assert grad_norm == pytest.approx(1e-3, rel=1e-4)  # torch clips to max_norm / (norm + 1e-6)


def test_forward_and_backward_hooks_see_each_call():
    d = fastnn.Dense(3, 3, dtype=np.float64)
    model = fastnn.Sequential(d, fastnn.ReLU(), d)
    seen = []
    h1 = d.register_forward_hook(lambda m, i, o: seen.append(("fwd", o.shape)))
    h2 = d.register_full_backward_hook(lambda m, gi, go: seen.append(("bwd", go.shape)))
    x = np.ones((2, 3))
    model.backward(np.ones_like(model.forward(x)))
    assert seen == [("fwd", (2, 3))] * 2 + [("bwd", (2, 3))] * 2
    h1.remove()
    h2.remove()
    seen.clear()
    model.forward(x)
    assert seen == []


def test_parameter_store_is_contiguous_and_zeroes_in_one_call():
    model = fastnn.Sequential(fastnn.Dense(3, 4), fastnn.ReLU(), fastnn.Dense(4, 2))
    store = model.parameter_store()
    assert model.parameter_store() is store
    (buf,) = store.buffers
    assert buf.data.size == sum(p.size for p in model.parameters())
    for p in model.parameters():
        assert np.shares_memory(p.data, buf.data) and np.shares_memory(p.grad, buf.grad)
    buf.grad[:] = 1
    store.zero_grad()
    assert not buf.grad.any()


def test_an_output_also_read_by_another_layer_gets_both_gradients():
    x = Input((3,))
    d1 = fastnn.Dense(3, 3, dtype=np.float64)
    h = d1(x)
    d2 = fastnn.Dense(3, 2, dtype=np.float64)
    model = Model(x, [h, d2(h)])
    X = np.random.default_rng(0).standard_normal((4, 3))
    g1, g2 = np.ones((4, 3)), np.full((4, 2), 2.0)
    model.forward(X)
    model.zero_grad()
    gx = model.backward([g1, g2])
    gh = g1 + g2 @ d2.weight.data
    np.testing.assert_allclose(d1.weight.grad, gh.T @ X)
    np.testing.assert_allclose(gx, gh @ d1.weight.data)


def test_a_copied_model_leaves_the_store_and_trains():
    import copy
    import pickle

    model = fastnn.Sequential(fastnn.Dense(3, 2, dtype=np.float64))
    fastnn.optim.SGD(model.parameters(), lr=0.1)  # the parameters now live in a store
    X, y = np.ones((4, 3)), np.zeros((4, 2))
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert all(p._owner is None for p in twin.parameters())
        before = twin[0].weight.data.copy()
        trainer = fastnn.Trainer(twin, MSELoss(), fastnn.optim.SGD(twin.parameters(), lr=0.1))
        trainer.train_step(X, y)
        assert not np.array_equal(twin[0].weight.data, before)
        np.testing.assert_array_equal(model[0].weight.data, before)


def test_copies_leave_workspaces_and_pending_calls_behind():
    import pickle

    model = fastnn.Sequential(fastnn.Dense(300, 300), fastnn.ReLU())
    model.predict(np.zeros((500, 300), np.float32))
    model.forward(np.zeros((500, 300), np.float32))
    twin = pickle.loads(pickle.dumps(model))
    assert len(pickle.dumps(model)) < 2 * 300 * 300 * 4 + 50_000  # weights and grads only
    np.testing.assert_array_equal(twin.predict(np.ones((2, 300))), model.predict(np.ones((2, 300))))
    with pytest.raises(RuntimeError, match="no forward call is waiting"):
        twin.backward(np.zeros((500, 300), np.float32))
