"""Bad hyper-parameters and inputs that used to be accepted silently or failed with an
unclear error: each now raises a clear exception naming the argument, with plain
numbers in the message."""

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, optim
from fastnn.validation import check_finite, positive_int

NAN, INF = float("nan"), float("inf")


def params():
    return fastnn.Dense(3, 2).parameters()


@pytest.mark.parametrize(
    "build,exc,phrase",
    [
        (lambda: optim.SGD(params(), lr=0.1, dampening=NAN), ValueError, "dampening"),
        (lambda: optim.SGD(params(), lr=0.1, dampening=INF), ValueError, "dampening"),
        (lambda: optim.SGD(params(), lr=0.1, weight_decay=INF), ValueError, "weight_decay"),
        (lambda: optim.Adam(params(), weight_decay=INF), ValueError, "weight_decay"),
        (lambda: optim.RMSprop(params(), momentum=INF), ValueError, "momentum"),
        (lambda: optim.Adagrad(params(), lr_decay=INF), ValueError, "lr_decay"),
        (lambda: optim.Adam(params(), betas=(0.9, NAN)), ValueError, "betas"),
        (lambda: optim.SGD(params(), lr=True), TypeError, "lr must be a number, got True"),
        (lambda: optim.SGD(params(), lr="0.1"), TypeError, "lr must be a number"),
        (
            lambda: optim.SGD(params(), lr=0.1, momentum=0.9, nesterov="yes"),
            TypeError,
            "nesterov must be True or False, got 'yes'",
        ),
        (lambda: optim.Adam(params(), amsgrad="False"), TypeError, "amsgrad"),
        (lambda: optim.Adam(params(), betas=0.9), TypeError, "betas"),
        (
            lambda: optim.NAdam(params(), decoupled_weight_decay=1),
            TypeError,
            "decoupled_weight_decay",
        ),
        (
            lambda: optim.SGD([{"params": params(), "momentum": "0.9"}], lr=0.1),
            TypeError,
            "momentum",
        ),
    ],
)
def test_optimizer_hyper_parameters(build, exc, phrase):
    with pytest.raises(exc, match=phrase):
        build()


def test_numpy_scalars_are_numbers_and_are_converted():
    opt = optim.SGD(params(), lr=np.int64(1), momentum=np.float32(0.5))
    assert type(opt.lr) is float and opt.lr == 1.0
    assert type(opt.param_groups[0]["momentum"]) is float
    opt.lr = np.float64(0.25)
    assert opt.lr == 0.25
    with pytest.raises(TypeError, match="lr"):
        opt.lr = True
    adam = optim.Adam(params(), betas=[np.float32(0.5), 0.9])
    assert adam.param_groups[0]["betas"] == (0.5, 0.9)


@pytest.mark.parametrize(
    "build,phrase",
    [
        (lambda: fastnn.LeakyReLU(NAN), "LeakyReLU: negative_slope"),
        (lambda: fastnn.LeakyReLU(INF), "LeakyReLU: negative_slope"),
        (lambda: fastnn.ELU(NAN), "ELU: alpha"),
        (lambda: fastnn.ELU(-INF), "ELU: alpha"),
        (lambda: fastnn.Softplus(beta=INF), "Softplus: beta"),
        (lambda: fastnn.Softplus(threshold=NAN), "Softplus: threshold"),
        (lambda: fastnn.PReLU(3, init=NAN), "PReLU: init"),
        (lambda: fastnn.RBF(3, 2, width=INF), "RBF: width"),
        (lambda: fastnn.BatchNorm1d(3, eps=INF), "BatchNorm1d: eps"),
        (lambda: fastnn.BatchNorm1d(3, momentum=NAN), "BatchNorm1d: momentum"),
        (lambda: fastnn.LayerNorm(3, eps=INF), "LayerNorm: eps"),
        (lambda: fastnn.GroupNorm(1, 3, eps=INF), "GroupNorm: eps"),
    ],
)
def test_layer_constructors_refuse_nan_and_inf(build, phrase):
    with pytest.raises(ValueError, match=phrase):
        build()


@pytest.mark.parametrize(
    "build,exc,phrase",
    [
        (lambda: fastnn.LeakyReLU("0.1"), TypeError, "negative_slope must be a number"),
        (lambda: fastnn.ELU(True), TypeError, "ELU: alpha"),
        (
            lambda: fastnn.Dense(np.int64(0), 3),
            ValueError,
            "Dense: in_features must be positive, got 0",
        ),
        (
            lambda: fastnn.Dense(3.0, 3),
            TypeError,
            r"Dense: in_features must be an integer, got 3\.0$",
        ),
        (lambda: fastnn.Dense(np.float64(3.0), 3), TypeError, r"got 3\.0$"),
    ],
)
def test_layer_constructor_messages_name_the_layer_and_print_plain_numbers(build, exc, phrase):
    with pytest.raises(exc, match=phrase) as info:
        build()
    assert "np." not in str(info.value)


@pytest.mark.parametrize(
    "build,exc,phrase",
    [
        (lambda: callbacks.EarlyStopping(min_delta=NAN), ValueError, "min_delta"),
        (lambda: callbacks.EarlyStopping(min_delta=INF), ValueError, "min_delta"),
        (lambda: callbacks.EarlyStopping(min_delta="0.1"), TypeError, "min_delta"),
        (lambda: callbacks.EarlyStopping(patience=2.5), TypeError, "patience"),
        (
            lambda: callbacks.EarlyStopping(patience=np.int64(-1)),
            ValueError,
            "patience must be >= 0, got -1$",
        ),
        (lambda: callbacks.EarlyStopping(restore_best="no"), TypeError, "restore_best"),
        (lambda: callbacks.EarlyStopping(monitor=3), TypeError, "monitor"),
        (lambda: callbacks.CSVLogger("x.csv", append="yes"), TypeError, "append"),
        (lambda: callbacks.ModelCheckpoint("m", save_best_only="yes"), TypeError, "save_best_only"),
    ],
)
def test_callback_arguments(build, exc, phrase):
    with pytest.raises(exc, match=phrase):
        build()


def test_messages_print_plain_numbers():
    for bad in (np.int64(-3), np.float32(2.5), np.bool_(True)):
        with pytest.raises((TypeError, ValueError)) as info:
            positive_int(bad, "n")
        assert "np." not in str(info.value) and "numpy" not in str(info.value)
    with pytest.raises(ValueError) as info:
        fastnn.seed(np.int64(-3))
    assert str(info.value).endswith("got -3")


def test_masked_arrays_keep_their_meaning_or_are_refused():
    layer = fastnn.Dense(2, 1)
    x = np.ma.masked_array([[1.0, 2.0], [3.0, 4.0]], mask=[[0, 1], [0, 0]])
    with pytest.raises(ValueError, match="masked array with 1 masked value"):
        layer.forward(x)
    with pytest.raises(ValueError, match="masked"):
        fastnn.Sequential(layer).predict(x)
    unmasked = np.ma.masked_array([[1.0, 2.0]])  # nothing masked: the data is used
    np.testing.assert_array_equal(layer.forward(unmasked), layer.forward(unmasked.data))


def test_float64_beyond_the_float32_range_is_refused_not_overflowed():
    layer = fastnn.Dense(2, 1)  # float32
    with pytest.raises(ValueError, match=r"1e\+300 at index \(0, 1\) is beyond the float32"):
        layer.forward(np.array([[1.0, 1e300]]))
    with pytest.raises(ValueError, match="beyond the float32 range"):
        check_finite(np.array([[1.0, -1e39]]), "fit X", np.float32)
    check_finite(np.array([[1.0, 3e38]]), "fit X", np.float32)  # within range: fine
    with pytest.raises(ValueError, match="NaN or infinity"):  # infinite already
        check_finite(np.array([[1.0, np.inf]]), "fit X", np.float32)
