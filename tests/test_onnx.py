"""fastnn.onnx.export: every built-in MLP layer exported, checked by onnx.checker and run
by onnxruntime against model.predict (batch 1, 7, 450), in float32 and float64; clear
errors for layers without an ONNX form."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastnn  # noqa: E402
import fastnn.onnx  # noqa: E402
from fastnn import layers as L  # noqa: E402
from fastnn.module import Layer  # noqa: E402
from helpers import run_onnx  # noqa: E402


def trained(model, n_in, rng, steps=3):
    """A few training steps so that running statistics and weights are not trivial."""
    opt = fastnn.optim.Adam(model.parameters(), lr=1e-2)
    loss = fastnn.losses.MSELoss()
    trainer = fastnn.Trainer(model, loss, opt)
    X = rng.normal(1.0, 2.0, (64, n_in)).astype(model.dtype)
    out = model.predict(X[:2]).shape[1]
    trainer.fit(
        X, rng.normal(size=(64, out)).astype(model.dtype), epochs=steps, batch_size=16, verbose=0
    )
    return model


def standardize(n, rng, inverse=False):
    s = L.Standardize(n, inverse=inverse)
    s.mean[...] = rng.normal(size=n)
    s.scale[...] = rng.uniform(0.5, 2.0, n)
    return s


MODELS = {
    "dense_relu": lambda r: fastnn.Sequential(L.Dense(6, 16), L.ReLU(), L.Dense(16, 3)),
    "every_activation": lambda r: fastnn.Sequential(
        L.Dense(6, 8),
        L.Sigmoid(),
        L.Dense(8, 8),
        L.Tanh(),
        L.Dense(8, 8),
        L.LeakyReLU(0.1),
        L.Dense(8, 8),
        L.ELU(0.7),
        L.Dense(8, 8),
        L.GELU(),
        L.Dense(8, 8),
        L.GELU(approximate="tanh"),
        L.Dense(8, 8),
        L.Softplus(beta=2.0, threshold=3.0),
        L.Dense(8, 8),
        L.Softplus(),
        L.Dense(8, 8),
        L.HardTanh(-0.5, 0.7),
        L.Dense(8, 8),
        L.AbsReLU(),
        L.Dense(8, 8),
        L.PReLU(8),
        L.Dense(8, 8),
        L.PReLU(),
        L.Identity(),
        L.Dense(8, 4),
        L.Softmax(),
    ),
    "batchnorm_dropout": lambda r: fastnn.Sequential(
        standardize(6, r),
        L.Dense(6, 32),
        L.BatchNorm1d(32),
        L.ReLU(),
        L.Dropout(0.3),
        L.Dense(32, 32, bias=False),
        L.BatchNorm1d(32, affine=False),
        L.ReLU(),
        L.Dropout(0.2, mode="weight_scaling"),
        L.Dense(32, 2),
        standardize(2, r, True),
    ),
    "layernorm_groupnorm": lambda r: fastnn.Sequential(
        L.Dense(6, 12),
        L.LayerNorm(12),
        L.GELU(),
        L.Dense(12, 12),
        L.LayerNorm(12, elementwise_affine=False),
        L.Dense(12, 12),
        L.GroupNorm(3, 12),
        L.Tanh(),
        L.Dense(12, 2),
    ),
    "maxout_rbf_dropconnect": lambda r: fastnn.Sequential(
        L.Maxout(6, 10, pieces=3),
        L.DropConnect(L.Dense(10, 10), p=0.3),
        L.ReLU(),
        L.RBF(10, 7, width=2.0),
        L.Dense(7, 2),
    ),
    "weight_norm": lambda r: fastnn.Sequential(
        L.weight_norm(L.Dense(6, 10)), L.ReLU(), L.weight_norm(L.Dense(10, 2), dim=None)
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_export_matches_predict(tmp_path, rng, name, dtype):
    fastnn.seed(0)
    model = trained(MODELS[name](rng).astype(dtype), 6, rng)
    path = tmp_path / "model.onnx"
    proto = fastnn.onnx.export(model, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in (1, 7, 450):
        X = rng.normal(1.0, 2.0, (batch, 6)).astype(dtype)
        ref = model.predict(X)
        got = run_onnx(proto, X)
        assert got.dtype == dtype and got.shape == ref.shape
        # float64 GELU goes through a float32 erf (onnxruntime has no double Erf)
        gelu = name in ("every_activation", "layernorm_groupnorm")
        tol = 1e-5 if dtype == np.float32 or gelu else 1e-12
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())
    assert model.training  # export leaves the model's mode alone


def test_batchnorm_and_dropout_are_in_the_graph(rng):
    model = trained(MODELS["batchnorm_dropout"](rng), 6, rng)
    ops = [n.op_type for n in fastnn.onnx.export(model).graph.node]
    assert ops.count("BatchNormalization") == 2
    assert ops.count("Gemm") == 3
    assert "Dropout" not in ops and ops.count("Mul") == 2  # weight scaling and Standardize


@pytest.mark.parametrize("opset", [17, 18, 20])
def test_opsets(rng, opset):
    model = trained(MODELS["layernorm_groupnorm"](rng), 6, rng)
    proto = fastnn.onnx.export(model, opset=opset)
    assert proto.opset_import[0].version == opset
    X = rng.normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(proto, X), model.predict(X), rtol=1e-5, atol=1e-6)


def test_unsupported_layer_and_bad_arguments():
    class Doubler(Layer):
        def _forward(self, ctx, x):
            return 2 * x

        def _backward(self, ctx, grad_out, need_input_grad=True):
            return 2 * grad_out

    model = fastnn.Sequential(L.Dense(3, 3), Doubler())
    with pytest.raises(fastnn.onnx.ExportError, match="no ONNX form for layer Doubler"):
        fastnn.onnx.export(model)
    fastnn.onnx.register(Doubler)(lambda layer, g, x: g.node("Mul", [x, g.const(2.0, "two")]))
    try:
        X = np.ones((2, 3), np.float32)
        np.testing.assert_allclose(
            run_onnx(fastnn.onnx.export(model), X), model.predict(X), rtol=1e-6
        )
    finally:
        del fastnn.onnx.CONVERTERS[Doubler]
    bn = fastnn.Sequential(L.Dense(3, 3), L.BatchNorm1d(3, track_running_stats=False))
    with pytest.raises(fastnn.onnx.ExportError, match="track_running_stats"):
        fastnn.onnx.export(bn)
    with pytest.raises(ValueError, match="input_shape"):
        fastnn.onnx.export(model, input_shape=(4, 3))
    with pytest.raises(ValueError, match="opset"):
        fastnn.onnx.export(fastnn.Sequential(L.Dense(3, 3)), opset=11)


def residual_mlp():
    x = fastnn.Input((6,))
    h = L.Dense(6, 16)(x)
    h = L.Add()([h, L.Dense(16, 16)(L.ReLU()(h))])
    h = L.Residual(L.Dense(16, 16), L.BatchNorm1d(16), L.Tanh(), L.Dense(16, 16))(h)
    return fastnn.Model(x, L.Dense(16, 3)(L.Dropout(0.3)(h)))


def two_branch():
    x = fastnn.Input((6,))
    a = L.ReLU()(L.Dense(6, 8)(x))
    b = L.Sigmoid()(L.Dense(6, 5)(x))
    m = L.Multiply()([L.Dense(13, 7)(L.Concatenate()([a, b])), L.Dense(6, 7)(x)])
    return fastnn.Model(x, L.Dense(7, 2)(m))


@pytest.mark.parametrize("make", [residual_mlp, two_branch], ids=["residual", "two_branch"])
def test_graph_models_export(rng, make):
    fastnn.seed(1)
    model = trained(make(), 6, rng)
    proto = fastnn.onnx.export(model)
    for batch in (1, 7, 450):
        X = rng.normal(size=(batch, 6)).astype(np.float32)
        ref = model.predict(X)
        np.testing.assert_allclose(
            run_onnx(proto, X), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max()
        )


def test_two_inputs_two_outputs(rng):
    fastnn.seed(2)
    a, b = fastnn.Input((4,), name="left"), fastnn.Input((3,), name="right")
    h = L.Concatenate()([L.Dense(4, 5)(a), L.Dense(3, 5)(b)])
    shared = L.Dense(10, 10)
    h = shared(L.ReLU()(shared(h)))  # one layer called twice: its weights are shared
    model = fastnn.Model([a, b], [L.Dense(10, 2)(h), L.Softmax()(L.Dense(10, 3)(h))])
    proto = fastnn.onnx.export(model)
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    assert [o.name for o in proto.graph.output] == ["output", "output_1"]
    Xa, Xb = rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32)
    got = run_onnx(proto, {"left": Xa, "right": Xb}, outputs=True)
    for g, r in zip(got, model.predict([Xa, Xb])):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Inputs"):
        fastnn.onnx.export(model, input_shape=(None, 4))
