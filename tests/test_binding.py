"""Misuse of fastnn._kernels raises a Python exception instead of reaching C.

The binding takes raw NumPy arrays; before the checked rewrite a wrong dtype, a short
output buffer, a non-contiguous view or None for a required buffer read or wrote out of
bounds or crashed. Here every wrapper is driven from one valid call per dtype (CALLS),
and each of its array arguments in turn is replaced by a wrong one: the other float
dtype, an integer array, one element too few or too many along its last axis, a
non-contiguous view, a read-only array where the kernel writes, None where the kernel
needs a buffer. Each must raise TypeError / ValueError naming the argument.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastnn import _kernels as K

SCR = K.COLSUM_SCRATCH_ROWS
N, C = 6, 4  # rows and columns (channels) of the test calls: >= 2 so views can be strided


def _arrays(dtype, seed=0):
    rng = np.random.default_rng(seed)

    def f(*shape, positive=False):
        a = rng.standard_normal(shape).astype(dtype)
        return np.abs(a) + 0.5 if positive else a

    return f


def _u8(*shape, high=2):
    return np.random.default_rng(1).integers(0, high, shape).astype(np.uint8)


def _scratch(width):
    return np.zeros(SCR * width, np.float64)


# name -> (function, builder(dtype) -> dict of arguments in call order,
#          arguments that may be None (NULL in C) one at a time, arguments the kernel
#          writes, pairs of arguments that may be None together only)
CALLS = {}
PAIRS = {}


def call(name, optional=(), written=(), pair=None):
    def register(builder):
        CALLS[name] = (getattr(K, name), builder, set(optional), set(written))
        PAIRS[name] = pair
        return builder

    return register


@call("gemm", written={"c"})
def _gemm(dt):
    f = _arrays(dt)
    return dict(a=f(N, 3), b=f(C, 3), c=f(N, C), trans_a=False, trans_b=True)


@call("bias_act", optional={"bias"}, written={"z", "y"})
def _bias_act(dt):
    f = _arrays(dt)
    return dict(act=K.ACT_RELU, alpha=0.0, beta=0.0, bias=f(C), z=f(N, C), y=f(N, C))


@call("act_backward", optional={"z", "gz", "gbias"}, written={"gz", "gbias", "scratch"})
def _act_backward(dt):
    f = _arrays(dt)
    return dict(
        act=K.ACT_TANH,
        alpha=0.0,
        beta=0.0,
        z=None,
        y=f(N, C),
        gy=f(N, C),
        gz=f(N, C),
        gbias=f(C),
        scratch=_scratch(C),
    )


@call(
    "bn_forward_train",
    optional={"gamma", "beta"},
    written={"running_mean", "running_var", "y", "save_mean", "save_invstd", "scratch"},
    pair=("running_mean", "running_var"),
)
def _bn_forward_train(dt):
    f = _arrays(dt)
    return dict(
        x=f(N, C),
        gamma=f(C),
        beta=f(C),
        eps=1e-5,
        momentum=0.1,
        running_mean=f(C),
        running_var=f(C, positive=True),
        y=f(N, C),
        save_mean=f(C),
        save_invstd=f(C),
        scratch=_scratch(2 * C),
    )


@call("bn_forward_eval", optional={"gamma", "beta"}, written={"y"})
def _bn_forward_eval(dt):
    f = _arrays(dt)
    return dict(
        x=f(N, C, 3),
        gamma=f(C),
        beta=f(C),
        mean=f(C),
        var=f(C, positive=True),
        eps=1e-5,
        y=f(N, C, 3),
    )


@call(
    "bn_backward",
    optional={"gamma", "ggamma", "gbeta"},
    written={"gx", "ggamma", "gbeta", "scratch"},
)
def _bn_backward(dt):
    f = _arrays(dt)
    return dict(
        batch_stats=True,
        x=f(N, C),
        gy=f(N, C),
        gamma=f(C),
        mean=f(C),
        invstd=f(C, positive=True),
        gx=f(N, C),
        ggamma=f(C),
        gbeta=f(C),
        scratch=_scratch(2 * C),
    )


@call(
    "bn_relu_dropout_train",
    optional={"gamma", "beta", "mask"},
    written={
        "running_mean",
        "running_var",
        "y",
        "save_mean",
        "save_invstd",
        "scale",
        "shift",
        "mask",
        "scratch",
    },
    pair=("running_mean", "running_var"),
)
def _bn_relu_dropout_train(dt):
    f = _arrays(dt)
    return dict(
        x=f(N, C),
        gamma=f(C),
        beta=f(C),
        eps=1e-5,
        momentum=0.1,
        running_mean=f(C),
        running_var=f(C, positive=True),
        y=f(N, C),
        save_mean=f(C),
        save_invstd=f(C),
        scale=f(C),
        shift=f(C),
        mask=_u8(N, C),
        p=0.5,
        dscale=2.0,
        seed=1,
        counter=2,
        scratch=_scratch(2 * C),
    )


@call(
    "bn_relu_dropout_backward",
    optional={"gamma", "mask", "ggamma", "gbeta"},
    written={"gx", "ggamma", "gbeta", "scratch"},
)
def _bn_relu_dropout_backward(dt):
    f = _arrays(dt)
    return dict(
        x=f(N, C),
        gy=f(N, C),
        gamma=f(C),
        mean=f(C),
        invstd=f(C, positive=True),
        scale=f(C),
        shift=f(C),
        mask=_u8(N, C),
        dscale=2.0,
        gx=f(N, C),
        ggamma=f(C),
        gbeta=f(C),
        scratch=_scratch(2 * C),
    )


@call("rownorm_forward", written={"y", "mean", "invstd"}, pair=("w", "b"))
def _rownorm_forward(dt):  # GroupNorm layout: (N, 4 channels, 3) in 2 groups
    f = _arrays(dt)
    return dict(
        x=f(N, C, 3),
        D=2 * 3,
        groups=2,
        inner=3,
        w=f(C),
        b=f(C),
        eps=1e-5,
        y=f(N, C, 3),
        mean=f(2 * N),
        invstd=f(2 * N),
    )


@call("rownorm_backward", optional={"w", "gx", "gw", "gb"}, written={"gx", "gw", "gb"})
def _rownorm_backward(dt):
    f = _arrays(dt)
    return dict(
        x=f(N, C, 3),
        D=2 * 3,
        groups=2,
        inner=3,
        gy=f(N, C, 3),
        w=f(C),
        mean=f(2 * N),
        invstd=f(2 * N, positive=True),
        gx=f(N, C, 3),
        gw=f(C),
        gb=f(C),
    )


@call("weight_norm_forward", written={"w", "norms"})
def _weight_norm_forward(dt):
    f = _arrays(dt)
    return dict(v=f(C, 3), g=f(C), w=f(C, 3), norms=f(C))


@call("weight_norm_backward", optional={"gv", "gg"}, written={"gv", "gg"})
def _weight_norm_backward(dt):
    f = _arrays(dt)
    return dict(v=f(C, 3), g=f(C), norms=f(C, positive=True), gw=f(C, 3), gv=f(C, 3), gg=f(C))


@call("prelu_forward", written={"y"})
def _prelu_forward(dt):
    f = _arrays(dt)
    return dict(x=f(N, C), a=f(C), y=f(N, C))


@call("prelu_backward", optional={"ga"}, written={"gx", "ga", "scratch"})
def _prelu_backward(dt):
    f = _arrays(dt)
    return dict(x=f(N, C), gy=f(N, C), a=f(C), gx=f(N, C), ga=f(C), scratch=_scratch(C))


@call("add_relu", written={"y"})
def _add_relu(dt):
    f = _arrays(dt)
    return dict(a=f(N, C, 3), b=f(N, C, 3), y=f(N, C, 3))


@call("maxout_forward", written={"y", "idx"})
def _maxout_forward(dt):
    f = _arrays(dt)
    return dict(z=f(N, 3 * C), pieces=3, y=f(N, C), idx=_u8(N, C))


@call("maxout_backward", written={"gz"})
def _maxout_backward(dt):
    f = _arrays(dt)
    return dict(gy=f(N, C), idx=_u8(N, C, high=3), pieces=3, gz=f(N, 3 * C))


@call("softmax_forward", written={"y"})
def _softmax_forward(dt):
    f = _arrays(dt)
    return dict(x=f(N, C), y=f(N, C))


@call("softmax_backward", written={"gx"})
def _softmax_backward(dt):
    f = _arrays(dt)
    return dict(y=f(N, C), gy=f(N, C), gx=f(N, C))


@call("rbf_forward", written={"xc_d2", "y"})
def _rbf_forward(dt):
    f = _arrays(dt)
    return dict(
        xsq=f(N, positive=True),
        csq=f(C, positive=True),
        width=f(C, positive=True),
        xc_d2=f(N, C),
        y=f(N, C),
    )


@call("rbf_backward", optional={"gwidth"}, written={"gd2", "gsum", "grow", "gwidth"})
def _rbf_backward(dt):
    f = _arrays(dt)
    return dict(
        d2=f(N, C, positive=True),
        y=f(N, C),
        gy=f(N, C),
        width=f(C, positive=True),
        gd2=f(N, C),
        gsum=f(C),
        grow=f(N),
        gwidth=f(C),
    )


@call("dropout_forward", written={"y", "mask"})
def _dropout_forward(dt):
    f = _arrays(dt)
    return dict(x=f(N, C), y=f(N, C), mask=_u8(N, C), p=0.5, scale=2.0, seed=1, counter=2)


@call("dropout_backward", written={"gx"})
def _dropout_backward(dt):
    f = _arrays(dt)
    return dict(gy=f(N, C), mask=_u8(N, C), scale=2.0, gx=f(N, C))


@call("softmax_xent", optional={"grad"}, written={"grad", "row_loss"})
def _softmax_xent(dt):
    f = _arrays(dt)
    labels = np.arange(N, dtype=np.int64) % C
    return dict(
        logits=f(N, C), labels=labels, smoothing=0.0, grad=f(N, C), row_loss=np.zeros(N, np.float64)
    )


@call("mse", optional={"grad"}, written={"grad"})
def _mse(dt):
    f = _arrays(dt)
    return dict(pred=f(N, C), target=f(N, C), grad=f(N, C))


@call("mae", optional={"grad"}, written={"grad"})
def _mae(dt):
    f = _arrays(dt)
    return dict(pred=f(N, C), target=f(N, C), grad=f(N, C))


@call("pointwise_loss", optional={"pos_weight"}, written={"loss", "grad"})
def _pointwise_loss(dt):
    f = _arrays(dt)
    return dict(
        kind=4, pred=f(N, C), target=f(N, C), param=1.0, pos_weight=f(C), loss=f(N, C), grad=f(N, C)
    )


def _optim(*state):
    """Builder of an optimizer step: param, grad and its state buffers, then scalars."""

    def builder(dt, scalars):
        f = _arrays(dt)
        args = dict(param=f(N * C), grad=f(N * C))
        args.update({name: f(N * C, positive=True) for name in state})
        args.update(scalars)
        return args

    return builder


_sgd = _optim("buf")
_adam = _optim("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_adagrad = _optim("state_sum")
_rmsprop = _optim("square_avg", "grad_avg", "momentum_buffer")
_adadelta = _optim("square_avg", "acc_delta")
_adamax = _optim("exp_avg", "exp_inf")
_nadam = _optim("exp_avg", "exp_avg_sq")

call("sgd_step", optional={"buf"}, written={"param", "buf"})(
    lambda dt: _sgd(
        dt,
        dict(
            lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False, first_step=True
        ),
    )
)
call(
    "adam_step",
    optional={"max_exp_avg_sq"},
    written={"param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
)(
    lambda dt: _adam(
        dt,
        dict(
            lr=0.1,
            beta1=0.9,
            beta2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            decoupled=False,
            bias_correction1=0.1,
            bias_correction2_sqrt=0.03,
        ),
    )
)
call("adagrad_step", written={"param", "state_sum"})(
    lambda dt: _adagrad(dt, dict(clr=0.1, weight_decay=0.0, eps=1e-10))
)
call(
    "rmsprop_step",
    optional={"grad_avg", "momentum_buffer"},
    written={"param", "square_avg", "grad_avg", "momentum_buffer"},
)(lambda dt: _rmsprop(dt, dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.9)))
call("adadelta_step", written={"param", "square_avg", "acc_delta"})(
    lambda dt: _adadelta(dt, dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0))
)
call("adamax_step", written={"param", "exp_avg", "exp_inf"})(
    lambda dt: _adamax(dt, dict(clr=0.02, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0))
)
call("nadam_step", written={"param", "exp_avg", "exp_avg_sq"})(
    lambda dt: _nadam(
        dt,
        dict(
            lr=0.002,
            beta1=0.9,
            beta2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            decoupled=False,
            bias_correction2=0.001,
            coef_grad=0.1,
            coef_avg=0.8,
        ),
    )
)


@call("sumsq")
def _sumsq(dt):
    return dict(x=_arrays(dt)(N, C))


@call("scale", written={"x"})
def _scale(dt):
    return dict(x=_arrays(dt)(N, C), s=0.5)


@call("zero", written={"x"})
def _zero(dt):
    return dict(x=_arrays(dt)(N, C))


@call("init_uniform", written={"x"})
def _init_uniform(dt):
    return dict(x=_arrays(dt)(N, C), seed=7, lo=-1.0, hi=1.0)


@call("init_normal", written={"x"})
def _init_normal(dt):
    return dict(x=_arrays(dt)(N, C), seed=7, mean=0.0, std=1.0)


@call("init_trunc_normal", written={"x"})
def _init_trunc_normal(dt):
    return dict(x=_arrays(dt)(N, C), seed=7, mean=0.0, std=1.0, a=-2.0, b=2.0)


@call("penalty", written={"grad"})
def _penalty(dt):
    f = _arrays(dt)
    return dict(w=f(N, C), grad=f(N, C), l1=0.1, l2=0.01)


# Recurrent kernels: an LSTM direction (it has every optional buffer) of a bidirectional
# layer; R = RN * RT rows, hidden RH, input RI.
RN, RT, RI, RH = 2, 3, 3, 2


@call(
    "rnn_forward",
    optional={"h0", "c0", "lengths", "y"},
    written={"w_t", "gates", "hprev", "cprev", "y", "hn", "cn"},
)
def _rnn_forward(dt):
    f, R = _arrays(dt), RN * RT
    return dict(
        mode=K.RNN_LSTM,
        batch_first=False,
        reverse=True,
        bidirectional=True,
        x=f(R, RI),
        w_ih=f(4 * RH, RI),
        w_hh=f(4 * RH, RH),
        bias=f(4 * RH),
        h0=f(RN, RH),
        c0=f(RN, RH),
        lengths=np.array([3, 1], np.int64),
        w_t=f(RI + RH, 4 * RH),
        gates=f(R, 4 * RH),
        hprev=f(R, RH),
        cprev=f(R, RH),
        gh=None,
        y=f(R, 2 * RH),
        hn=f(RN, RH),
        cn=f(RN, RH),
    )


@call(
    "rnn_backward",
    optional={"lengths", "dy", "dhn", "dcn", "dx", "dw_ih", "dw_hh", "dbias"},
    written={"dgates", "dh0", "dc0", "dx", "dw_ih", "dw_hh", "dbias", "scratch"},
)
def _rnn_backward(dt):
    f, R = _arrays(dt), RN * RT
    return dict(
        mode=K.RNN_LSTM,
        batch_first=False,
        reverse=True,
        bidirectional=True,
        x=f(R, RI),
        w_ih=f(4 * RH, RI),
        w_hh=f(4 * RH, RH),
        lengths=np.array([3, 1], np.int64),
        gates=f(R, 4 * RH),
        hprev=f(R, RH),
        cprev=f(R, RH),
        dy=f(R, 2 * RH),
        dhn=f(RN, RH),
        dcn=f(RN, RH),
        dgates=f(R, 4 * RH),
        dh0=f(RN, RH),
        dc0=f(RN, RH),
        want_dh0=True,
        dx=f(R, RI),
        accumulate_dx=False,
        dw_ih=f(4 * RH, RI),
        dw_hh=f(4 * RH, RH),
        dbias=f(4 * RH),
        scratch=_scratch(4 * RH),
    )


@call("embedding_forward", written={"y"})
def _embedding_forward(dt):
    f = _arrays(dt)
    return dict(idx=np.array([0, 3, 1, 3], np.int64), w=f(5, 3), y=f(4, 3))


@call("embedding_backward", written={"gw"})
def _embedding_backward(dt):
    f = _arrays(dt)
    return dict(idx=np.array([0, 3, 1, 3], np.int64), gy=f(4, 3), padding_idx=-1, gw=f(5, 3))


# Convolution, pooling and padding on (2, 4, 5, 4) images; FREE: arguments whose shape
# sets the geometry, so any size of them runs (adaptive pooling's sizes).
CN, CC, CH, CW = 2, 4, 5, 4
GEO = dict(stride=(1, 1), padding=(1, 0), dilation=(1, 1), groups=2)
FREE = {
    "adaptive_avgpool_forward": {"x", "y"},
    "adaptive_avgpool_backward": {"gy", "gx"},
}


def _conv_scratch(dt):
    size = K.conv_scratch_size((CN, CC, CH, CW), (6, 2, 3, 2), (1, 1), (1, 0), (1, 1), 2)
    return np.zeros(size, dt)


@call("conv_forward", optional={"bias", "z"}, written={"z", "y", "scratch"})
def _conv_forward(dt):
    f = _arrays(dt)
    out = (CN, 6, CH, CW - 1)
    return dict(
        x=f(CN, CC, CH, CW),
        w=f(6, 2, 3, 2),
        bias=f(6),
        act=K.ACT_RELU,
        alpha=0.0,
        beta=0.0,
        z=f(*out),
        y=f(*out),
        scratch=_conv_scratch(dt),
        **GEO,
    )


@call(
    "conv_backward",
    optional={"z", "gw", "gbias", "gx"},
    written={"gw", "gbias", "gx", "scratch", "bsum"},
)
def _conv_backward(dt):
    f = _arrays(dt)
    out = (CN, 6, CH, CW - 1)
    return dict(
        x=f(CN, CC, CH, CW),
        w=f(6, 2, 3, 2),
        act=K.ACT_RELU,
        alpha=0.0,
        beta=0.0,
        z=f(*out),
        y=f(*out),
        gy=f(*out),
        gw=f(6, 2, 3, 2),
        gbias=f(6),
        gx=f(CN, CC, CH, CW),
        scratch=_conv_scratch(dt),
        bsum=np.zeros(6),
        **GEO,
    )


POOL = dict(kernel=(2, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 1), ceil_mode=False)


@call("maxpool_forward", written={"y", "idx"})
def _maxpool_forward(dt):
    f = _arrays(dt)
    return dict(
        x=f(CN, CC, CH, CW),
        y=f(CN, CC, 3, 3),
        idx=np.zeros((CN, CC, 3, 3), np.int32),
        **POOL,
    )


@call("maxpool_backward", written={"gx"})
def _maxpool_backward(dt):
    f = _arrays(dt)
    return dict(
        gy=f(CN, CC, 3, 3),
        idx=np.zeros((CN, CC, 3, 3), np.int32),
        gx=f(CN, CC, CH, CW),
        **POOL,
    )


AVG = dict(kernel=(2, 2), stride=(2, 1), padding=(1, 0), ceil_mode=False, count_include_pad=True)


@call("avgpool_forward", written={"y"})
def _avgpool_forward(dt):
    f = _arrays(dt)
    return dict(x=f(CN, CC, CH, CW), y=f(CN, CC, 3, 3), **AVG)


@call("avgpool_backward", written={"gx"})
def _avgpool_backward(dt):
    f = _arrays(dt)
    return dict(gy=f(CN, CC, 3, 3), gx=f(CN, CC, CH, CW), **AVG)


@call("adaptive_avgpool_forward", written={"y"})
def _adaptive_avgpool_forward(dt):
    f = _arrays(dt)
    return dict(x=f(CN, CC, CH, CW), y=f(CN, CC, 2, 3))


@call("adaptive_avgpool_backward", written={"gx"})
def _adaptive_avgpool_backward(dt):
    f = _arrays(dt)
    return dict(gy=f(CN, CC, 2, 3), gx=f(CN, CC, CH, CW))


@call("pad_forward", written={"y"})
def _pad_forward(dt):
    f = _arrays(dt)
    return dict(x=f(CN, CC, CH, CW), y=f(CN, CC, CH + 3, CW + 2), pads=(1, 2, 0, 2), mode="reflect")


@call("pad_backward", written={"gx"})
def _pad_backward(dt):
    f = _arrays(dt)
    return dict(
        gy=f(CN, CC, CH + 3, CW + 2), gx=f(CN, CC, CH, CW), pads=(1, 2, 0, 2), mode="reflect"
    )


@call(
    "bn_relu_forward_train",
    optional={"gamma", "beta"},
    written={
        "running_mean",
        "running_var",
        "y",
        "save_mean",
        "save_invstd",
        "scale",
        "shift",
        "scratch",
    },
    pair=("running_mean", "running_var"),
)
def _bn_relu_forward_train(dt):
    f = _arrays(dt)
    return dict(
        x=f(N, C, 3),
        gamma=f(C),
        beta=f(C),
        eps=1e-5,
        momentum=0.1,
        running_mean=f(C),
        running_var=f(C, positive=True),
        y=f(N, C, 3),
        save_mean=f(C),
        save_invstd=f(C),
        scale=f(C),
        shift=f(C),
        scratch=_scratch(2 * C),
    )


@call(
    "bn_relu_backward",
    optional={"gamma", "ggamma", "gbeta"},
    written={"gx", "ggamma", "gbeta", "scratch"},
)
def _bn_relu_backward(dt):
    f = _arrays(dt)
    return dict(
        x=f(N, C, 3),
        gy=f(N, C, 3),
        gamma=f(C),
        mean=f(C),
        invstd=f(C, positive=True),
        scale=f(C),
        shift=f(C),
        gx=f(N, C, 3),
        ggamma=f(C),
        gbeta=f(C),
        scratch=_scratch(2 * C),
    )


DTYPES = [np.float32, np.float64]
OTHER = {np.dtype(np.float32): np.float64, np.dtype(np.float64): np.float32}


def _array_args(name, dt):
    """(argument, value) of every array argument of the valid call."""
    args = CALLS[name][1](dt)
    return [(k, v) for k, v in args.items() if isinstance(v, np.ndarray)]


def _cases(pick=lambda name, arg, value, written: True):
    """(function name, argument name, dtype) for the argument mutations."""
    out = []
    for name, (_, _, _, written) in CALLS.items():
        for dt in DTYPES:
            for arg, value in _array_args(name, dt):
                if pick(name, arg, value, written):
                    out.append(pytest.param(name, arg, dt, id=f"{name}-{arg}-{np.dtype(dt).name}"))
    return out


def SIZED(name, arg, value, written):
    """False for a function whose only array is its input (it takes any size and
    dtype) and for an argument whose shape sets the geometry (FREE)."""
    return len(_array_args(name, np.float32)) > 1 and arg not in FREE.get(name, ())


def _run(name, dt, **changes):
    fn, builder, _, _ = CALLS[name]
    args = builder(dt)
    assert set(changes) <= set(args)
    args.update(changes)
    return fn(*args.values())


def _refused(exc, name, dt, match=None, **changes):
    """The call with `changes` raises `exc` (message matching `match`) before the kernel
    runs: no array of the call is modified."""
    fn, builder, _, _ = CALLS[name]
    args = builder(dt)
    assert set(changes) <= set(args)
    args.update(changes)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    with pytest.raises(exc, match=match):
        fn(*args.values())
    for k, v in before.items():
        assert np.array_equal(args[k], v, equal_nan=v.dtype.kind == "f"), f"{k} was written"


def test_every_kernel_wrapper_is_covered():
    wrappers = {n for n in dir(K) if not n.startswith("_") and callable(getattr(K, n))}
    not_kernels = {
        "act_needs_input",
        "set_num_threads",
        "get_num_threads",
        "use_threads",
        "threads_in_use",
        "start_team",
        "set_gemm_blocks",
        "set_blas_thread_hooks",
        "random_bits",
        "peak_gflops",  # no arrays: tested below
        "interruptions",
        "DenseChain",
    }  # a class; its misuse is tested in test_inference.py
    sizes = {"conv_output_size", "conv_scratch_size"}  # arithmetic, no arrays
    assert wrappers - not_kernels - sizes == set(CALLS)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_valid_call_runs(name, dt):
    """The base call of each table entry is valid (so the mutations fail for their
    own reason), also with each optional buffer None."""
    _run(name, dt)
    for arg in CALLS[name][2]:
        _run(name, dt, **{arg: None})
    if PAIRS[name]:
        _run(name, dt, **{arg: None for arg in PAIRS[name]})


@pytest.mark.parametrize(
    "name,arg,dt", _cases(lambda n, a, v, w: v.dtype.kind == "f" and SIZED(n, a, v, w))
)
def test_other_float_dtype_raises(name, arg, dt):
    """float32 and float64 mixed in one call (the call's dtype comes from one argument,
    so the message may name the other side of the mix)."""
    value = dict(_array_args(name, dt))[arg]
    _refused(
        TypeError,
        name,
        dt,
        r"must be a float(32|64) array, got float(32|64)",
        **{arg: value.astype(OTHER[value.dtype])},
    )


@pytest.mark.parametrize("name,arg,dt", _cases())
def test_integer_array_raises(name, arg, dt):
    value = dict(_array_args(name, dt))[arg]
    wrong = np.int32 if value.dtype == np.int64 else np.int64
    _refused(TypeError, name, dt, arg, **{arg: value.astype(wrong)})


@pytest.mark.parametrize("name,arg,dt", _cases(SIZED))
def test_too_short_raises(name, arg, dt):
    """One element fewer along the last axis: no kernel may read or write past it."""
    value = dict(_array_args(name, dt))[arg]
    _refused(ValueError, name, dt, **{arg: np.ascontiguousarray(value[..., :-1])})


@pytest.mark.parametrize(
    "name,arg,dt", _cases(lambda n, a, v, w: a != "scratch" and SIZED(n, a, v, w))
)
def test_too_long_raises(name, arg, dt):
    """One element more along the last axis (scratch may be larger than needed)."""
    value = dict(_array_args(name, dt))[arg]
    longer = np.concatenate([value, value[..., :1]], axis=-1)
    _refused(ValueError, name, dt, **{arg: longer})


@pytest.mark.parametrize("name,arg,dt", _cases())
def test_non_contiguous_raises(name, arg, dt):
    value = dict(_array_args(name, dt))[arg]
    strided = np.repeat(value, 2, axis=-1)[..., ::2]
    assert np.array_equal(strided, value) and not strided.flags.c_contiguous
    _refused(ValueError, name, dt, arg, **{arg: strided})


@pytest.mark.parametrize("name,arg,dt", _cases(lambda n, a, v, w: a not in CALLS[n][2]))
def test_none_for_a_required_buffer_raises(name, arg, dt):
    """TypeError; ValueError for one of a pair that comes together (running statistics,
    weight and bias)."""
    _refused(ValueError if arg in (PAIRS[name] or ()) else TypeError, name, dt, arg, **{arg: None})


@pytest.mark.parametrize("name,arg,dt", _cases(lambda n, a, v, w: a in w))
def test_read_only_output_raises(name, arg, dt):
    value = dict(_array_args(name, dt))[arg]
    value.flags.writeable = False
    _refused(ValueError, name, dt, arg, **{arg: value})


@pytest.mark.parametrize("name,arg,dt", _cases(lambda n, a, v, w: v.dtype.itemsize > 1))
def test_byte_swapped_raises(name, arg, dt):
    value = dict(_array_args(name, dt))[arg]
    swapped = value.astype(value.dtype.newbyteorder())
    _refused(TypeError, name, dt, arg, **{arg: swapped})


@pytest.mark.parametrize("name", sorted(CALLS))
def test_not_an_array_raises(name):
    first = _array_args(name, np.float32)[0][0]
    _refused(TypeError, name, np.float32, first, **{first: [[1.0, 2.0]]})


# -- checks that depend on values, not only on shapes ----------------------------------


def test_act_backward_needs_z_or_y_by_activation():
    # ELU's derivative reads its input, tanh's its output; the bias gradient's column
    # sums need scratch; gz may be None only when those sums are all that is wanted.
    _refused(TypeError, "act_backward", np.float32, "z", act=K.ACT_ELU, z=None)
    _refused(TypeError, "act_backward", np.float32, "y", y=None)
    _refused(TypeError, "act_backward", np.float32, "scratch", scratch=None)
    _refused(TypeError, "act_backward", np.float32, "gz", gbias=None, gz=None)
    _run("act_backward", np.float32, act=K.ACT_IDENTITY, y=None, gz=None)


@pytest.mark.parametrize("act", [-1, 11, 1000])
def test_unknown_activation_code_raises(act):
    _refused(ValueError, "bias_act", np.float32, "act", act=act)
    with pytest.raises(ValueError, match="act"):
        K.act_needs_input(act)


@pytest.mark.parametrize("label", [-1, C, 2**40])
def test_label_out_of_range_raises(label):
    labels = np.zeros(N, np.int64)
    labels[3] = label
    _refused(ValueError, "softmax_xent", np.float64, f"got {label} at row 3", labels=labels)


def test_maxout_winner_beyond_pieces_raises():
    idx = _u8(N, C, high=3)
    idx[2, 1] = 3
    _refused(ValueError, "maxout_backward", np.float32, "idx", idx=idx)
    _refused(ValueError, "maxout_forward", np.float32, "pieces", pieces=0)


def test_running_statistics_come_together():
    both = "running_mean and running_var"
    _refused(ValueError, "bn_forward_train", np.float32, both, running_var=None)
    _refused(ValueError, "bn_relu_dropout_train", np.float32, both, running_mean=None)


def test_batch_statistics_need_samples():
    f = _arrays(np.float32)
    _refused(
        ValueError, "bn_forward_train", np.float32, "at least one sample", x=f(0, C), y=f(0, C)
    )


def test_fused_batch_norm_takes_2d_input():
    f = _arrays(np.float32)
    _refused(ValueError, "bn_relu_dropout_train", np.float32, "2-D", x=f(N, C, 1), y=f(N, C, 1))


@pytest.mark.parametrize(
    "layout", [dict(D=0), dict(groups=0), dict(inner=0), dict(D=5, inner=1), dict(D=6, inner=4)]
)
def test_rownorm_layout_must_fit(layout):
    _refused(ValueError, "rownorm_forward", np.float32, None, **layout)


def test_rownorm_weight_and_bias_come_together():
    _refused(ValueError, "rownorm_forward", np.float32, "w and b", b=None)


def test_prelu_slopes_one_or_per_channel():
    f = _arrays(np.float32)
    _refused(ValueError, "prelu_forward", np.float32, "slope", a=f(C - 1))
    _run("prelu_forward", np.float32, a=f(1))
    _run("prelu_backward", np.float32, a=f(1), ga=f(1), scratch=None)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_shapes_must_fit(ta, tb):
    f = _arrays(np.float64)
    a = f(3, N) if ta else f(N, 3)
    b = f(C, 3) if tb else f(3, C)
    K.gemm(a, b, f(N, C), ta, tb)
    with pytest.raises(ValueError, match="does not fit"):
        K.gemm(a, b, f(N, C + 1), ta, tb)
    with pytest.raises(ValueError, match="does not fit"):
        K.gemm(a, b.T.copy(), f(N, C), ta, tb)
    with pytest.raises(ValueError, match="2-D"):
        K.gemm(a, b, f(N, C, 1), ta, tb)


def test_random_bits_checks_its_output():
    K.random_bits(1, 2, np.zeros(5, np.uint32))
    with pytest.raises(TypeError, match="out"):
        K.random_bits(1, 2, np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="out"):
        K.random_bits(1, 2, np.zeros(10, np.uint32)[::2])


def test_aliasing_is_allowed_where_the_kernels_support_it():
    """In-place forms the Python layer uses: y is z, gx is gy."""
    f = _arrays(np.float32)
    z = f(N, C)
    K.bias_act(K.ACT_RELU, 0.0, 0.0, f(C), z, z)
    assert (z >= 0).all()
    g = f(N, C)
    K.dropout_backward(g, np.zeros((N, C), np.uint8), 2.0, g)
    assert (g == 0).all()


@given(
    rows=st.integers(0, 9),
    cols=st.integers(1, 9),
    out_rows=st.integers(0, 9),
    out_cols=st.integers(1, 9),
    f64=st.booleans(),
)
def test_any_output_shape_is_either_right_or_refused(rows, cols, out_rows, out_cols, f64):
    """Softmax, dropout and bias + activation with an output of any shape: they run
    (and match NumPy) when it is the input's shape, and raise ValueError otherwise."""
    dt = np.float64 if f64 else np.float32
    x = np.random.default_rng(rows * 10 + cols).standard_normal((rows, cols)).astype(dt)
    out = np.full((out_rows, out_cols), np.nan, dt)
    calls = [
        lambda: K.softmax_forward(x, out),
        lambda: K.dropout_forward(x, out, np.empty(x.shape, np.uint8), 0.0, 1.0, 1, 2),
        lambda: K.bias_act(K.ACT_RELU, 0.0, 0.0, np.zeros(cols, dt), x.copy(), out),
    ]
    expected = [np.exp(x - x.max(axis=1, keepdims=True)) if rows else x, x, np.maximum(x, 0)]
    if rows:
        expected[0] /= expected[0].sum(axis=1, keepdims=True)
    for run, want in zip(calls, expected):
        if out.shape == x.shape:
            run()
            np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
        else:
            with pytest.raises(ValueError, match="shape"):
                run()


ALL_ARRAYS = [(name, arg) for name in sorted(CALLS) for arg, _ in _array_args(name, np.float32)]
DTYPE_POOL = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.uint32,
    np.bool_,
    np.complex64,
]


@settings(max_examples=400)
@given(
    which=st.sampled_from(ALL_ARRAYS),
    f64=st.booleans(),
    shape=st.lists(st.integers(0, 9), min_size=0, max_size=3),
    dtype=st.sampled_from(DTYPE_POOL),
)
def test_any_replacement_array_runs_correctly_sized_or_is_refused(which, f64, shape, dtype):
    """Any array argument replaced by an array of any shape (up to 3-D) and dtype: a
    wrong element count (not only one off) or a wrong dtype raises before the kernel
    writes anything; the right count and dtype may run. No combination crashes."""
    name, arg = which
    dt = np.float64 if f64 else np.float32
    value = dict(_array_args(name, dt))[arg]
    new = np.ones(shape, dtype)
    lone = not SIZED(name, arg, value, None)
    wrong_dtype = new.dtype != value.dtype and not (lone and new.dtype in OTHER)
    one_slope = name.startswith("prelu") and arg == "a" and new.size == 1  # PReLU(1)
    wrong_size = (
        new.size != value.size
        and not lone
        and not one_slope
        and (arg != "scratch" or new.size < value.size)
    )
    if wrong_dtype or wrong_size:
        # TypeError for the dtype, ValueError for the size (or for the shape, which
        # may be checked first)
        reshaped = wrong_size or new.shape != value.shape
        exc = ((TypeError,) if wrong_dtype else ()) + ((ValueError,) if reshaped else ())
        _refused(exc, name, dt, **{arg: new})
    else:
        try:
            _run(name, dt, **{arg: new})
        except (TypeError, ValueError):
            pass  # the right size in another shape, or values a kernel refuses


def test_peak_gflops_measures_a_positive_rate_or_none():
    from fastnn import _kernels

    rate = _kernels.peak_gflops(1, 0.01)
    assert rate is None or rate > 0
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _kernels.peak_gflops(0)
    with pytest.raises(ValueError, match="seconds must be > 0"):
        _kernels.peak_gflops(1, float("nan"))


def test_interruptions_returns_gap_lengths_per_thread():
    from fastnn import _kernels

    gaps = _kernels.interruptions(2, 0.02, threshold_us=1.0)
    assert len(gaps) == 2
    for g in gaps:
        assert g.dtype == np.float64 and g.ndim == 1 and (g > 1.0).all()
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _kernels.interruptions(0)
    with pytest.raises(ValueError, match="seconds must be in"):
        _kernels.interruptions(1, 0.0)
    with pytest.raises(ValueError, match="threshold_us must be > 0"):
        _kernels.interruptions(1, 0.01, threshold_us=-1.0)
