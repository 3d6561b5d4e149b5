"""Property-based fuzzing of the public API and the file loaders (hypothesis).

Whatever a user passes - wrong shapes, dtypes, strides, NaN, bad hyper-parameters,
damaged or crafted files - fastnn either answers (with the documented shape) or raises
one of the documented exceptions (TypeError, ValueError, and its DataError); never
another exception, a crash or an out-of-bounds access. .ci/sanitize.sh runs this file
under AddressSanitizer and UndefinedBehaviorSanitizer, where an out-of-bounds access
in a kernel aborts the run. The example budget is the hypothesis profile's
(tests/conftest.py: fixed and derandomised under 'ci')."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import io as fio, optim
from fastnn.datasets import DataError, load_table

FUZZ = settings(
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ]
)
ALLOWED = (TypeError, ValueError)
F = 4  # features the fuzzed layers are built for

# layer name -> builder of a layer taking (N, F) input
LAYERS = {
    "Dense": lambda: fastnn.Dense(F, 3),
    "Dense-f64": lambda: fastnn.Dense(F, 3, dtype=np.float64),
    "ReLU": fastnn.ReLU,
    "Tanh": fastnn.Tanh,
    "Sigmoid": fastnn.Sigmoid,
    "LeakyReLU": lambda: fastnn.LeakyReLU(0.1),
    "ELU": fastnn.ELU,
    "GELU": fastnn.GELU,
    "GELU-tanh": lambda: fastnn.GELU("tanh"),
    "Softplus": fastnn.Softplus,
    "HardTanh": fastnn.HardTanh,
    "AbsReLU": fastnn.AbsReLU,
    "Identity": fastnn.Identity,
    "Softmax": fastnn.Softmax,
    "PReLU": lambda: fastnn.PReLU(F),
    "Maxout": lambda: fastnn.Maxout(F, 3, 2),
    "RBF": lambda: fastnn.RBF(F, 3),
    "BatchNorm1d": lambda: fastnn.BatchNorm1d(F),
    "LayerNorm": lambda: fastnn.LayerNorm(F),
    "GroupNorm": lambda: fastnn.GroupNorm(2, F),
    "Standardize": lambda: fastnn.Standardize(F),
    "Dropout": lambda: fastnn.Dropout(0.3),
    "DropConnect": lambda: fastnn.DropConnect(fastnn.Dense(F, 3), 0.2),
    "Sequential": lambda: fastnn.Sequential(
        fastnn.Dense(F, 5),
        fastnn.BatchNorm1d(5),
        fastnn.ReLU(),
        fastnn.Dropout(0.2),
        fastnn.Dense(5, 2),
    ),
}

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.bool_, np.float16, np.complex64, np.uint8]
VALUES = st.one_of(
    st.floats(-1e6, 1e6, width=32),
    st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-40]),
)


@st.composite
def arrays(draw, features=F):
    """Arrays of 0-3 dims, sizes near the expected ones, any dtype, odd values, often
    not C-contiguous."""
    ndim = draw(st.integers(0, 3))
    shape = [draw(st.sampled_from([0, 1, 2, 3, 7])) for _ in range(ndim)]
    if ndim >= 2 and draw(st.booleans()):
        shape[-1] = features
    dtype = draw(st.sampled_from(DTYPES))
    n = int(np.prod(shape)) if shape else 1
    values = draw(st.lists(VALUES, min_size=n, max_size=n))
    with np.errstate(all="ignore"):
        x = np.array(values, dtype=np.float64).reshape(shape).astype(dtype)
    layout = draw(st.sampled_from(["c", "fortran", "strided"]))
    if layout == "fortran":
        x = np.asfortranarray(x)
    elif layout == "strided" and ndim >= 1:
        big = np.repeat(x, 2, axis=0)
        x = big[::2]
    return x


def _call(fn, *args):
    """fn(*args), or None when it raised an allowed exception."""
    try:
        with np.errstate(all="ignore"):
            return fn(*args)
    except ALLOWED:
        return None


@FUZZ
@given(
    name=st.sampled_from(sorted(LAYERS)),
    x=arrays(),
    train=st.booleans(),
    grad_kind=st.sampled_from(["match", "random"]),
    g=arrays(),
)
def test_layers_answer_or_raise_clearly(name, x, train, grad_kind, g):
    fastnn.seed(0)
    layer = LAYERS[name]()
    layer.train(train)
    y = _call(layer.forward, x)
    if y is None:
        return
    assert isinstance(y, np.ndarray) and y.shape[:1] == x.shape[:1]
    grad = np.ones_like(y) if grad_kind == "match" else g
    gx = _call(layer.backward, grad)
    if gx is not None:
        assert gx.shape == x.shape


@FUZZ
@given(x=arrays(), batch=st.one_of(st.integers(-2, 5), st.floats(allow_nan=True), st.none()))
def test_predict_answers_or_raises_clearly(x, batch):
    fastnn.seed(0)
    model = LAYERS["Sequential"]()
    out = _call(model.predict, x, batch)
    if out is not None:
        assert out.shape == (x.shape[0], 2)


ODD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.tuples(st.floats(0, 1), st.floats(0, 1)),
    st.sampled_from([np.float32(0.5), np.int64(2), np.bool_(True)]),
)

OPTIMIZERS = {
    "SGD": ["lr", "momentum", "dampening", "weight_decay", "nesterov"],
    "Adam": ["lr", "betas", "eps", "weight_decay", "amsgrad"],
    "AdamW": ["lr", "betas", "eps", "weight_decay", "amsgrad"],
    "Adagrad": ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
    "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"],
    "Adadelta": ["lr", "rho", "eps", "weight_decay"],
    "Adamax": ["lr", "betas", "eps", "weight_decay"],
    "NAdam": ["lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"],
}


@FUZZ
@given(name=st.sampled_from(sorted(OPTIMIZERS)), data=st.data())
def test_optimizers_accept_valid_options_and_refuse_others_clearly(name, data):
    keys = OPTIMIZERS[name]
    chosen = data.draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
    kwargs = {k: data.draw(ODD) for k in chosen}
    layer = fastnn.Dense(3, 2)
    opt = _call(lambda: getattr(optim, name)(layer.parameters(), **kwargs))
    if opt is None:
        return
    for g in opt.param_groups:  # what was accepted is plain and finite
        for k in chosen:
            v = g[k]
            assert type(v) in (bool, float, tuple), (k, v)
            if type(v) is float:
                assert np.isfinite(v)
    for p in layer.parameters():
        p.grad[...] = 0.5
    with np.errstate(all="ignore"):
        opt.step()


# -- file loaders ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    fastnn.seed(0)
    path = tmp_path_factory.mktemp("fuzz") / "m.safetensors"
    fastnn.save(
        fastnn.Sequential(
            fastnn.Dense(3, 4), fastnn.BatchNorm1d(4), fastnn.ReLU(), fastnn.Dense(4, 2)
        ),
        path,
    )
    return path.read_bytes()


def _load_bytes(tmp_path, data, name="m.safetensors"):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        fastnn.load(path)
    except ValueError as e:
        assert str(path) in str(e)
    try:
        fio.read_metadata(path)
    except ValueError:
        pass


@FUZZ
@given(
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_damaged_model_files_load_or_raise_value_error(tmp_path, model_bytes, edits, cut):
    data = bytearray(model_bytes)
    for where, value in edits:
        data[int(where * (len(data) - 1))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    _load_bytes(tmp_path, bytes(data))


JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False),
        st.text(max_size=6),
        st.sampled_from(
            [
                "Dense",
                "Sequential",
                "ReLU",
                "BatchNorm1d",
                "Dropout",
                "LayerNorm",
                "type",
                "config",
                "layers",
            ]
        ),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "config",
                    "layers",
                    "in_features",
                    "out_features",
                    "num_features",
                    "p",
                    "weight_norm",
                    "bias",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@FUZZ
@given(
    architecture=JSONISH,
    dtype=st.sampled_from(["float32", "float64", "int8", "x", ""]),
    tensors=st.dictionaries(
        st.sampled_from(["0.weight", "0.bias", "weight", "bias", "1.running_var"]),
        st.tuples(
            st.integers(0, 3),
            st.integers(1, 3),
            st.sampled_from([np.float32, np.float64, np.int64]),
        ),
        max_size=3,
    ),
)
def test_crafted_architectures_load_or_raise_value_error(tmp_path, architecture, dtype, tensors):
    arrays_ = {k: np.ones((a, b), t) for k, (a, b, t) in tensors.items()}
    meta = {
        "format": "fastnn",
        "format_version": "1",
        "dtype": dtype,
        "architecture": json.dumps(architecture),
        "user": "{}",
    }
    _load_bytes(tmp_path, fio.encode(arrays_, meta))


@FUZZ
@given(
    text=st.text(max_size=200),
    raw=st.binary(max_size=200),
    ext=st.sampled_from([".csv", ".npz", ".txt"]),
)
def test_data_files_load_or_raise_data_error(tmp_path, text, raw, ext):
    for i, content in enumerate((text.encode("utf-8", "surrogatepass"), raw)):
        path = tmp_path / f"d{i}{ext}"
        path.write_bytes(content)
        try:
            X, y, names, target = load_table(path)
        except DataError:
            continue
        assert X.shape[0] == y.shape[0] and X.shape[1] == len(names)
