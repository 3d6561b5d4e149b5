"""Compiled eval-mode predictors (fastnn.inference) and their kernel (DenseChain):
against NumPy references, the layer-by-layer evaluation forward, torch, and across
every change of model state that must refold them."""

import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import _kernels as K
from fastnn import inference, state_version
from fastnn.inference import NotCompilable

# NumPy versions of the elementwise activations (code -> f(z, alpha, beta)).
ERF = np.vectorize(__import__("math").erf)
ACTS = {
    K.ACT_IDENTITY: (0.0, 0.0, lambda z, a, b: z),
    K.ACT_RELU: (0.0, 0.0, lambda z, a, b: np.maximum(z, 0)),
    K.ACT_LEAKY_RELU: (0.1, 0.0, lambda z, a, b: np.where(z > 0, z, a * z)),
    K.ACT_SIGMOID: (0.0, 0.0, lambda z, a, b: 1 / (1 + np.exp(-z))),
    K.ACT_TANH: (0.0, 0.0, lambda z, a, b: np.tanh(z)),
    K.ACT_ABS: (0.0, 0.0, lambda z, a, b: np.abs(z)),
    K.ACT_HARDTANH: (-0.5, 0.5, lambda z, a, b: np.clip(z, a, b)),
    K.ACT_ELU: (1.0, 0.0, lambda z, a, b: np.where(z > 0, z, a * np.expm1(z))),
    K.ACT_GELU: (0.0, 0.0, lambda z, a, b: 0.5 * z * (1 + ERF(z / np.sqrt(2)))),
}


def chain_reference(x, weights, biases, acts):
    y = x.astype(np.float64)
    for w, b, (code, a, bb) in zip(weights, biases, acts):
        y = y @ w.T.astype(np.float64) + (0 if b is None else b)
        y = ACTS[code][2](y, a, bb)
    return y


def random_chain(rng, dims, dtype, codes, bias=True):
    weights = [
        (rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i])).astype(dtype)
        for i in range(len(dims) - 1)
    ]
    biases = [rng.standard_normal(d).astype(dtype) if bias else None for d in dims[1:]]
    acts = [(c, *ACTS[c][:2]) for c in codes]
    return weights, biases, acts


# ------------------------------------------------------------------ DenseChain kernel
@pytest.mark.parametrize("rows", [1, 3, 300])
@pytest.mark.parametrize("code", sorted(ACTS))
def test_dense_chain_matches_numpy(rng, dtype, tol, threads, rows, code):
    dims = [37, 64, 20, 5]
    weights, biases, acts = random_chain(rng, dims, dtype, [code, code, K.ACT_IDENTITY])
    x = rng.standard_normal((rows, dims[0])).astype(dtype)
    out = np.full((rows, dims[-1]), np.nan, dtype)
    chain = K.DenseChain(weights, biases, acts)
    assert chain.forward(x, out) is out
    np.testing.assert_allclose(out, chain_reference(x, weights, biases, acts), **tol)


# Odd widths with at least 65536 multiply-adds per layer: one row takes the GEMV split
# over the helper team, 2-3 rows BLAS in blocks of features, 4+ rows the register tiles
# (partial tiles of rows and of features), 130 and 203 rows the row blocks (a partial
# last block).
TEAM_DIMS = [300, 257, 259, 7]


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 8, 9, 130, 203])
@pytest.mark.parametrize("code", sorted(ACTS))
def test_dense_chain_team_and_tiles_match_numpy(rng, dtype, tol, threads, rows, code):
    weights, biases, acts = random_chain(rng, TEAM_DIMS, dtype, [code, code, code])
    x = rng.standard_normal((rows, TEAM_DIMS[0])).astype(dtype)
    out = np.full((rows, TEAM_DIMS[-1]), np.nan, dtype)
    K.DenseChain(weights, biases, acts).forward(x, out)
    tol["atol"] *= 10  # three layers of 257-300 terms: values near 0 keep their round-off
    np.testing.assert_allclose(out, chain_reference(x, weights, biases, acts), **tol)


@pytest.mark.parametrize("k, n", [(1, 1), (7, 25), (33, 47), (64, 64), (300, 257)])
@pytest.mark.parametrize("rows", [4, 5, 9, 130])
def test_dense_chain_tile_product_matches_numpy(rng, dtype, tol, rows, k, n):
    """One layer without bias or activation: the bare product, at shapes with partial
    register tiles on every side."""
    w = rng.standard_normal((n, k)).astype(dtype)
    x = rng.standard_normal((rows, k)).astype(dtype)
    chain = K.DenseChain([w], [None], [(K.ACT_IDENTITY, 0.0, 0.0)])
    expected = x.astype(np.float64) @ w.T.astype(np.float64)
    tol["atol"] *= 10 * np.sqrt(k)  # sums of k unit terms
    for _ in range(2):  # the first call of 4+ rows makes the transposed weights
        out = chain.forward(x, np.full((rows, n), np.nan, dtype))
        np.testing.assert_allclose(out, expected, **tol)


def test_dense_chain_in_a_forked_child(rng, use_threads):
    """A child process forked after the helper team started has none of its threads:
    its chain runs (on the calling thread) and gives the same results."""
    import os
    import pickle

    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    weights, biases, acts = random_chain(rng, TEAM_DIMS, np.float32, [K.ACT_RELU] * 3)
    chain = K.DenseChain(weights, biases, acts)
    x = rng.standard_normal((1, TEAM_DIMS[0])).astype(np.float32)
    with use_threads(2):
        expected = chain.forward(x, np.empty((1, TEAM_DIMS[-1]), np.float32))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: answer through the pipe, never return into pytest
            try:
                out = chain.forward(x, np.empty((1, TEAM_DIMS[-1]), np.float32))
                os.write(w, pickle.dumps(out))
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            got = pickle.loads(f.read())
        os.waitpid(pid, 0)
    np.testing.assert_array_equal(got, expected)


def test_dense_chain_without_bias_and_one_layer(rng, dtype, tol):
    weights, biases, acts = random_chain(rng, [9, 4], dtype, [K.ACT_TANH], bias=False)
    x = rng.standard_normal((6, 9)).astype(dtype)
    out = K.DenseChain(weights, biases, acts).forward(x, np.empty((6, 4), dtype))
    np.testing.assert_allclose(out, chain_reference(x, weights, biases, acts), **tol)


def test_dense_chain_same_bits_for_any_thread_count(rng, dtype, use_threads):
    weights, biases, acts = random_chain(
        rng, [300, 512, 256, 10], dtype, [K.ACT_RELU, K.ACT_RELU, K.ACT_IDENTITY]
    )
    chain = K.DenseChain(weights, biases, acts)
    for rows in (1, 2, 5, 16, 130, 2048):
        x = rng.standard_normal((rows, 300)).astype(dtype)
        results = []
        for n in (1, 2, 3):  # 3: more threads than cores, each with its block scratch
            with use_threads(n):
                results.append(chain.forward(x, np.empty((rows, 10), dtype)))
        for r in results[1:]:
            np.testing.assert_array_equal(results[0], r)


def test_dense_chain_rejects_bad_arguments(rng):
    f32 = np.float32
    weights, biases, acts = random_chain(rng, [5, 4, 3], f32, [K.ACT_RELU, K.ACT_IDENTITY])
    chain = K.DenseChain(weights, biases, acts)
    x, out = np.ones((2, 5), f32), np.empty((2, 3), f32)
    with pytest.raises(
        TypeError, match="DenseChain.forward: x must be a float32 array, got float64"
    ):
        chain.forward(x.astype(np.float64), out)
    with pytest.raises(TypeError, match="x must be a float32 array, got None"):
        chain.forward(None, out)
    with pytest.raises(ValueError, match="x must have 5 features"):
        chain.forward(np.ones((2, 6), f32), out)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        chain.forward(np.ones((5, 2), f32).T, out)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3\)"):
        chain.forward(x, np.empty((2, 4), f32))
    flat = np.ones(10, f32)
    with pytest.raises(ValueError, match="out overlaps x"):
        chain.forward(flat.reshape(2, 5), flat[4:].reshape(2, 3))
    ro = np.empty((2, 3), f32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        chain.forward(x, ro)
    with pytest.raises(
        ValueError, match="weights\\[1\\] has 4 input features, the layer before gives 3"
    ):
        K.DenseChain([np.ones((3, 5), f32), np.ones((2, 4), f32)], [None, None], acts)
    with pytest.raises(
        ValueError, match="biases\\[0\\] must be a contiguous float32 array of shape \\(4,\\)"
    ):
        K.DenseChain(weights, [np.ones(3, f32), None], acts)
    with pytest.raises(TypeError, match="weights\\[1\\] must be a float32 array"):
        K.DenseChain([weights[0], weights[1].astype(np.float64)], biases, acts)
    with pytest.raises(ValueError, match="unknown activation code 99"):
        K.DenseChain(weights, biases, [(99, 0.0, 0.0), acts[1]])
    with pytest.raises(ValueError, match="as many biases and activations"):
        K.DenseChain(weights, biases[:1], acts)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.DenseChain([np.ones((3, 5), np.int64)], [None], acts[:1])


# ------------------------------------------------------------------ models to compile
def trained_stats(model, X, steps=3):
    """Give every batch norm non-trivial running statistics and affine parameters."""
    g = np.random.default_rng(7)
    for m in model.modules():
        if isinstance(m, fastnn.BatchNorm1d) and m.affine:
            m.weight.data = g.uniform(0.5, 2.0, m.num_features)
            m.bias.data = g.standard_normal(m.num_features)
    model.train()
    for i in range(steps):
        model.forward(X * (1 + i) + i)
    model.eval()
    return model


def std_layer(n, dtype, inverse=False, seed=3):
    g = np.random.default_rng(seed)
    layer = fastnn.Standardize(n, inverse=inverse, dtype=dtype)
    layer.mean[...] = g.standard_normal(n) * 3
    layer.scale[...] = g.uniform(0.2, 5.0, n)
    return layer


def mlp_bn(dtype, features=12, hidden=16, classes=3):
    return fastnn.Sequential(
        fastnn.Dense(features, hidden, dtype=dtype),
        fastnn.BatchNorm1d(hidden, dtype=dtype),
        fastnn.ReLU(),
        fastnn.Dropout(0.5),
        fastnn.Dense(hidden, hidden, dtype=dtype),
        fastnn.BatchNorm1d(hidden, dtype=dtype),
        fastnn.ReLU(),
        fastnn.Dropout(0.5),
        fastnn.Dense(hidden, classes, dtype=dtype),
    )


MODELS = {
    "mlp_bn": mlp_bn,
    # batch norm first and after an activation: folded into the next Dense's columns
    "bn_first_and_after_act": lambda dt: fastnn.Sequential(
        fastnn.BatchNorm1d(12, dtype=dt),
        fastnn.Dense(12, 16, dtype=dt),
        fastnn.Tanh(),
        fastnn.BatchNorm1d(16, momentum=None, dtype=dt),
        fastnn.Dense(16, 3, dtype=dt),
    ),
    "bn_no_affine_no_bias": lambda dt: fastnn.Sequential(
        fastnn.Dense(12, 16, bias=False, dtype=dt),
        fastnn.BatchNorm1d(16, affine=False, dtype=dt),
        fastnn.ELU(),
        fastnn.Dense(16, 3, bias=False, dtype=dt),
    ),
    "standardize_both_ends": lambda dt: fastnn.Sequential(
        std_layer(12, dt),
        fastnn.Dense(12, 16, dtype=dt),
        fastnn.GELU(),
        fastnn.Dense(16, 2, dtype=dt),
        std_layer(2, dt, inverse=True, seed=4),
    ),
    "two_affines_in_a_row": lambda dt: fastnn.Sequential(
        std_layer(12, dt),
        fastnn.BatchNorm1d(12, dtype=dt),
        fastnn.Dropout(0.2),
        fastnn.Dense(12, 16, dtype=dt),
        fastnn.LeakyReLU(0.2),
        fastnn.Dropout(0.3, mode="weight_scaling"),
        fastnn.BatchNorm1d(16, dtype=dt),
        fastnn.Dense(16, 3, dtype=dt),
        fastnn.BatchNorm1d(3, dtype=dt),
    ),
    "activations_and_softmax": lambda dt: fastnn.Sequential(
        fastnn.Dense(12, 16, dtype=dt),
        fastnn.Sigmoid(),
        fastnn.Identity(),
        fastnn.Dense(16, 16, dtype=dt),
        fastnn.HardTanh(-0.5, 0.7),
        fastnn.Dense(16, 8, dtype=dt),
        fastnn.Softplus(),
        fastnn.Dense(8, 8, dtype=dt),
        fastnn.AbsReLU(),
        fastnn.Dense(8, 4, dtype=dt),
        fastnn.Softmax(),
    ),
    "nested": lambda dt: fastnn.Sequential(
        fastnn.Sequential(fastnn.Dense(12, 16, dtype=dt), fastnn.BatchNorm1d(16, dtype=dt)),
        fastnn.Sequential(fastnn.ReLU(), fastnn.Dense(16, 3, dtype=dt)),
    ),
}


def eval_forward(model, X):
    """The layer-by-layer evaluation forward (no compilation)."""
    was = model.training
    model.eval()
    try:
        y = X
        for layer in inference._layers_of(model):
            y = layer.forward(y)
        return y
    finally:
        model.train(was)


def assert_close_to(got, ref, dtype):
    """Agreement to the dtype's round-off, relative to the output's scale."""
    scale = max(1.0, float(np.abs(ref).max()))
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


@pytest.fixture
def data(rng):
    return rng.standard_normal((40, 12)) * 2 + 0.5


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predict_matches_layer_by_layer_eval(name, dtype, data, threads):
    fastnn.seed(0)
    X = data.astype(dtype)
    model = trained_stats(MODELS[name](dtype), X)
    ref = eval_forward(model, X)
    predictor = inference.compile(model)
    out = predictor(X)
    assert out.dtype == dtype and out.shape == ref.shape
    assert_close_to(out, ref, dtype)
    assert_close_to(model.predict(X, batch_size=7), ref, dtype)
    assert inference.cached_predictor(model) is not None


def test_folding_changes_the_weights_not_only_round_off(data):
    """A predictor that ignored batch norm would fail the comparison above: check that
    the statistics used there move the output far beyond the tolerance."""
    X = data.astype(np.float32)
    model = trained_stats(mlp_bn(np.float32), X)
    plain = fastnn.Sequential(*[m for m in model.layers if not isinstance(m, fastnn.BatchNorm1d)])
    assert np.abs(eval_forward(model, X) - eval_forward(plain, X)).max() > 0.1


def test_predict_against_torch_eval(data):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    X = data.astype(np.float32)
    model = trained_stats(mlp_bn(np.float32), X)
    tm = nn.Sequential(
        nn.Linear(12, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 3),
    ).eval()
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    with torch.inference_mode():
        ref = tm(torch.from_numpy(X)).numpy()
    assert_close_to(inference.compile(model)(X), ref, np.float32)


@pytest.mark.parametrize(
    "make, reason",
    [
        (
            lambda: fastnn.Sequential(
                fastnn.Dense(4, 4), fastnn.BatchNorm1d(4, track_running_stats=False)
            ),
            "track_running_stats=False",
        ),
        (
            lambda: fastnn.Sequential(fastnn.Dense(4, 4), fastnn.LayerNorm(4)),
            "LayerNorm\\) has no compiled evaluation form",
        ),
        (
            lambda: fastnn.Sequential(fastnn.Dense(4, 4), fastnn.ReLU(), fastnn.BatchNorm1d(4)),
            "no Dense layer to fold into",
        ),
        (
            lambda: fastnn.Sequential(fastnn.ReLU(), fastnn.Dense(4, 4)),
            "only right after a Dense layer",
        ),
        (
            lambda: fastnn.Sequential(fastnn.Dense(4, 4), fastnn.Softmax(), fastnn.Dense(4, 2)),
            "only a final Softmax",
        ),
        (lambda: fastnn.Sequential(fastnn.BatchNorm1d(4)), "no Dense layer"),
    ],
)
def test_not_a_dense_chain_compiles_as_a_graph(make, reason, rng):
    """Layers with no place in a Dense chain run their own evaluation forward as steps
    of a GraphPredictor; the Dense layers around them still fold."""
    model = make()
    with pytest.raises(NotCompilable, match=reason):
        inference.Predictor(model)
    assert isinstance(inference.compile(model), inference.GraphPredictor)
    assert isinstance(inference.cached_predictor(model), inference.GraphPredictor)
    X = rng.standard_normal((5, 4)).astype(np.float32)
    assert_close_to(model.predict(X), eval_forward(model, X), np.float32)


def test_not_compilable_and_predict_falls_back(rng):
    model = fastnn.Sequential(fastnn.Dense(4, 4), fastnn.Dense(4, 2, dtype=np.float64))
    with pytest.raises(NotCompilable, match="different dtypes"):
        inference.compile(model)
    assert inference.cached_predictor(model) is None
    X = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(X), eval_forward(model, X))


def test_compile_rejects_non_modules():
    with pytest.raises(TypeError, match="expected a fastnn Module, got list"):
        inference.compile([fastnn.Dense(2, 2)])


# ------------------------------------------------------------------ calling conventions
def test_outputs_are_owned_by_the_caller(rng):
    predictor = inference.compile(mlp_bn(np.float32))
    a = rng.standard_normal((4, 12)).astype(np.float32)
    first = predictor(a)
    kept = first.copy()
    second = predictor(a * 3)
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)


def test_input_is_converted_and_checked(rng):
    predictor = inference.compile(mlp_bn(np.float32))
    x = rng.standard_normal((5, 12))
    ref = predictor(x.astype(np.float32))
    np.testing.assert_array_equal(predictor(x), ref)  # float64 input
    np.testing.assert_array_equal(predictor(np.asfortranarray(x)), ref)
    np.testing.assert_array_equal(predictor(x.tolist()), ref)
    with pytest.raises(ValueError, match="Predictor: expected 12 features"):
        predictor(np.ones((2, 11)))
    with pytest.raises(ValueError, match="Predictor: expected a 2-D array"):
        predictor(np.ones(12))
    with pytest.raises(TypeError, match="numeric array"):
        predictor(np.array([["a"] * 12]))
    with pytest.raises(TypeError, match="out must be a float32 array"):
        predictor(x, out=np.empty((5, 3)))
    with pytest.raises(ValueError, match="predict: expected a non-empty 2-D array"):
        predictor.predict(np.ones((0, 12)))
    with pytest.raises(ValueError, match="batch_size must be positive"):
        predictor.predict(x, batch_size=0)


def test_no_allocation_per_call_after_the_first(rng):
    predictor = inference.compile(mlp_bn(np.float32, features=64, hidden=256))
    x64 = rng.standard_normal((64, 64)).astype(np.float32)
    out64 = np.empty((64, 3), np.float32)
    predictor(x64, out64)  # grows the scratch for 64 rows
    x1, out1 = x64[:1].copy(), np.empty((1, 3), np.float32)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            predictor(x64, out64)
            predictor(x1, out1)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 4096  # the scratch alone for 64 rows is 2 * 64 * 256 * 4 = 131 kB


def test_predict_in_batches_matches_one_call(rng, dtype):
    X = rng.standard_normal((1000, 12)).astype(dtype)
    predictor = inference.compile(mlp_bn(dtype))
    whole = predictor(X)
    assert_close_to(predictor.predict(X, batch_size=128), whole, dtype)
    np.testing.assert_array_equal(predictor.predict(X[:1], batch_size=1), predictor(X[:1]))


# ------------------------------------------------------------------ cache invalidation
def fresh_reference(model, X):
    return eval_forward(model, X)


def test_training_step_after_predict_gives_fresh_results(data):
    X = data.astype(np.float32)
    y = np.arange(len(X)) % 3
    fastnn.seed(1)
    model = mlp_bn(np.float32)
    trainer = fastnn.Trainer(
        model, fastnn.losses.CrossEntropyLoss(), fastnn.optim.Adam(model.parameters(), lr=0.05)
    )
    before = model.predict(X)
    compiled = inference.compile(model)
    trainer.train_step(X, y)
    after = model.predict(X)
    assert np.abs(after - before).max() > 1e-3  # the step changed the model
    assert_close_to(after, fresh_reference(model, X), np.float32)
    assert_close_to(compiled(X), fresh_reference(model, X), np.float32)


def test_optimizer_step_refolds(data):
    X = data.astype(np.float64)
    model = trained_stats(mlp_bn(np.float64), X)
    predictor = inference.compile(model)
    predictor(X)
    opt = fastnn.optim.SGD(model.parameters(), lr=0.5)
    for p in model.parameters():
        p.grad = np.ones(p.shape)
    opt.step()
    assert_close_to(predictor(X), fresh_reference(model, X), np.float64)


def test_load_state_dict_after_predict_gives_fresh_results(data):
    X = data.astype(np.float32)
    fastnn.seed(2)
    a = trained_stats(mlp_bn(np.float32), X)
    fastnn.seed(3)
    b = trained_stats(mlp_bn(np.float32), X, steps=5)
    before = a.predict(X)
    a.load_state_dict(b.state_dict())
    after = a.predict(X)
    assert np.abs(after - before).max() > 1e-3
    assert_close_to(after, fresh_reference(b, X), np.float32)


def test_parameter_assignment_and_train_mode_batch_norm_refold(data):
    X = data.astype(np.float32)
    model = trained_stats(mlp_bn(np.float32), X)
    predictor = inference.compile(model)
    predictor(X)
    model.layers[0].weight.data = model.layers[0].weight.data * 2
    assert_close_to(predictor(X), fresh_reference(model, X), np.float32)
    model.train()  # a train-mode forward moves the running statistics
    model.forward(X * 5 - 2)
    model.eval()
    assert_close_to(predictor(X), fresh_reference(model, X), np.float32)
    model.layers[1].reset_running_stats()
    assert_close_to(predictor(X), fresh_reference(model, X), np.float32)


def test_astype_and_reinitialisation_refold(data):
    model = trained_stats(mlp_bn(np.float32), data.astype(np.float32))
    predictor = inference.compile(model)
    predictor(data)
    model.astype(np.float64)
    out = predictor(data)
    assert out.dtype == np.float64
    assert_close_to(out, fresh_reference(model, data), np.float64)
    model.layers[4].reset_parameters("xavier_uniform")
    assert_close_to(predictor(data), fresh_reference(model, data), np.float64)


def test_in_place_edits_need_refresh(data):
    """Writing into an array in place is invisible to the version counter: refresh()
    (or state_version.bump()) is the documented way to publish it."""
    X = data.astype(np.float64)
    model = trained_stats(mlp_bn(np.float64), X)
    predictor = inference.compile(model)
    predictor(X)
    model.layers[1].running_mean[...] += 1.0
    assert np.abs(predictor(X) - fresh_reference(model, X)).max() > 1e-3  # stale
    state_version.bump()
    assert_close_to(predictor(X), fresh_reference(model, X), np.float64)


def test_unchanged_model_is_not_refolded(data):
    model = mlp_bn(np.float32)
    predictor = inference.cached_predictor(model)
    chain = predictor._chain
    model.predict(data)
    model.predict(data, batch_size=3)
    assert inference.cached_predictor(model) is predictor and predictor._chain is chain


def test_predict_falls_back_when_a_layer_stops_compiling(data):
    X = data.astype(np.float32)
    model = trained_stats(mlp_bn(np.float32), X)
    assert inference.cached_predictor(model) is not None
    model.layers[1].track_running_stats = False  # batch statistics in evaluation too
    model.layers[1].running_mean = model.layers[1].running_var = None
    state_version.bump()
    assert inference.cached_predictor(model) is None
    np.testing.assert_array_equal(model.predict(X), eval_forward(model, X))


# ------------------------------------------------------------------ Model graphs and hooks
def chain_model(dtype):
    inp = fastnn.Input((12,), dtype=dtype)
    h = fastnn.Dense(12, 16, dtype=dtype)(inp)
    h = fastnn.BatchNorm1d(16, dtype=dtype)(h)
    h = fastnn.ReLU()(h)
    h = fastnn.Dropout(0.5)(h)
    out = fastnn.Dense(16, 3, dtype=dtype)(h)
    return fastnn.Model(inp, out)


def test_model_graph_that_is_a_chain_compiles(dtype, data):
    X = data.astype(dtype)
    model = trained_stats(chain_model(dtype), X)
    ref = eval_forward_plan(model, X)
    assert inference.cached_predictor(model) is not None
    assert_close_to(model.predict(X, batch_size=16), ref, dtype)
    assert_close_to(inference.compile(model)(X), ref, dtype)


def eval_forward_plan(model, X):
    """The model's own (uncompiled) evaluation forward."""
    model.eval()
    return model.forward(X)


def test_branching_model_compiles_as_a_graph(data):
    X = data.astype(np.float32)
    inp = fastnn.Input((12,))
    a = fastnn.Dense(12, 4)(inp)
    b = fastnn.Dense(12, 4)(inp)
    model = fastnn.Model(inp, fastnn.layers.Add()([a, b]))
    with pytest.raises(NotCompilable, match="not a chain"):
        inference.Predictor(model)
    assert isinstance(inference.compile(model), inference.GraphPredictor)
    assert_close_to(model.predict(X), eval_forward_plan(model, X), np.float32)
    residual = fastnn.Sequential(fastnn.Dense(12, 12), fastnn.layers.Residual(fastnn.Dense(12, 12)))
    with pytest.raises(NotCompilable, match="Residual"):
        inference.Predictor(residual)
    assert_close_to(residual.predict(X), eval_forward_plan(residual, X), np.float32)


def test_hooked_model_predicts_through_its_layers(data):
    X = data.astype(np.float32)
    model = mlp_bn(np.float32)
    assert inference.cached_predictor(model) is not None
    seen = []
    handle = model.layers[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model.predict(X, batch_size=20)
    assert seen == [(20, 16), (20, 16)]  # the hook ran: no compiled path while hooked
    with pytest.raises(NotCompilable, match="hooks"):
        inference.compile(model)
    handle.remove()
    assert inference.cached_predictor(model) is not None


@pytest.mark.parametrize(
    "layers, message",
    [
        (
            lambda: [fastnn.Dense(4, 5), fastnn.Dense(6, 2)],
            "takes 6 features, the Dense layer before gives 5",
        ),
        (lambda: [fastnn.Dense(4, 5), fastnn.BatchNorm1d(6)], "has 6 features, the Dense layer"),
        (
            lambda: [fastnn.BatchNorm1d(3), fastnn.Dense(4, 2)],
            "takes 4 features, the layers before give 3",
        ),
    ],
)
def test_inconsistent_widths_are_not_compiled_and_predict_names_the_layer(layers, message):
    model = fastnn.Sequential(*layers())
    with pytest.raises(NotCompilable, match=message):
        inference.compile(model)
    with pytest.raises(ValueError, match="expected"):  # the layer's own check, uncompiled
        model.predict(np.ones((2, 4), np.float32))
