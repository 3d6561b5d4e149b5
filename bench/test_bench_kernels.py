"""Kernel families of the MLP-BN step, fastnn next to NumPy, one benchmark group each.

Shapes are the workload's largest activations, (2048, 512) float32 (1M elements: above
fastnn's parallel threshold), the logits (2048, 10), and for the optimizer a flat
buffer of 10M parameters. The NumPy counterparts are written as well as NumPy allows
(preallocated outputs, `out=`); those shared with the baseline come from it."""

import types

import numpy as np
import pytest

from fastnn import Parameter, _kernels
from fastnn.bench import numpy_baseline as nb
from fastnn.optim import Adam

M, H, CLASSES = 2048, 512, 10
ADAM_PARAMS = 10_000_000
P = 0.5
IMPLS = ["fastnn", "numpy"]


@pytest.fixture(scope="module")
def a():
    """All arrays, allocated once."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    r = lambda *shape: rng.standard_normal(shape, dtype=f32)  # noqa: E731
    e = lambda *shape: np.empty(shape, f32)  # noqa: E731
    logits = r(M, CLASSES)
    labels = rng.integers(0, CLASSES, M, dtype=np.int64)
    return types.SimpleNamespace(
        rng=rng,
        x=r(M, H),
        z=r(M, H),
        y=e(M, H),
        g=r(M, H),
        gx=e(M, H),
        tmp=e(M, H),
        xhat=e(M, H),
        uniform=e(M, H),
        mf=e(M, H),
        keep=np.empty((M, H), np.bool_),
        mask=np.empty((M, H), np.uint8),
        bias=r(H),
        gbias=np.zeros(H, f32),
        v1=e(H),
        v2=e(H),
        v3=e(H),
        v4=e(H),
        v5=e(H),
        gamma=np.ones(H, f32),
        beta=np.zeros(H, f32),
        rmean=np.zeros(H, f32),
        rvar=np.ones(H, f32),
        mean=e(H),
        invstd=e(H),
        scratch=np.empty(_kernels.COLSUM_SCRATCH_ROWS * 2 * H),
        logits=logits,
        labels=labels,
        lgrad=e(M, CLASSES),
        row_loss=np.empty(M),
        flat_index=np.arange(M, dtype=np.int64) * CLASSES + labels,
        rowmax=e(M, 1),
        rowsum=e(M, 1),
        rowlog=e(M, 1),
        picked=e(M),
    )


def run(benchmark, group, fn):
    benchmark.group = group
    benchmark(fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_dense_epilogue_forward(benchmark, a, impl):
    """z = relu(z + bias) in place, after the GEMM."""
    if impl == "fastnn":
        fn = lambda: _kernels.bias_act(_kernels.ACT_RELU, 0.0, 0.0, a.bias, a.z, a.z)  # noqa: E731
    else:

        def fn():
            np.add(a.z, a.bias, out=a.z)
            np.maximum(a.z, 0, out=a.z)

    run(benchmark, "dense epilogue forward (bias + ReLU), 2048x512", fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_dense_epilogue_backward(benchmark, a, impl):
    """gz = gy * [y > 0]; gbias += column sums of gz."""
    y = np.maximum(a.x, 0)
    if impl == "fastnn":

        def fn():
            _kernels.act_backward(
                _kernels.ACT_RELU, 0.0, 0.0, None, y, a.g, a.gx, a.gbias, a.scratch
            )
    else:

        def fn():
            np.greater(y, 0, out=a.keep)
            np.copyto(a.mf, a.keep)
            np.multiply(a.g, a.mf, out=a.gx)
            np.sum(a.gx, axis=0, out=a.v1)
            np.add(a.gbias, a.v1, out=a.gbias)

    run(benchmark, "dense epilogue backward (ReLU' + bias grad), 2048x512", fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_batchnorm_train_forward(benchmark, a, impl):
    if impl == "fastnn":

        def fn():
            _kernels.bn_forward_train(
                a.x, a.gamma, a.beta, 1e-5, 0.1, a.rmean, a.rvar, a.y, a.mean, a.invstd, a.scratch
            )
    else:

        def fn():
            nb.batchnorm_forward_train(
                a.x,
                a.gamma,
                a.beta,
                1e-5,
                0.1,
                a.rmean,
                a.rvar,
                a.xhat,
                a.y,
                a.mean,
                a.v1,
                a.invstd,
                a.tmp,
            )

    run(benchmark, "batchnorm train forward, 2048x512", fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_batchnorm_backward(benchmark, a, impl):
    nb.batchnorm_forward_train(
        a.x, a.gamma, a.beta, 1e-5, 0.1, None, None, a.xhat, a.y, a.mean, a.v1, a.invstd, a.tmp
    )
    if impl == "fastnn":

        def fn():
            _kernels.bn_backward(
                True, a.x, a.g, a.gamma, a.mean, a.invstd, a.gx, a.v2, a.v3, a.scratch
            )
    else:

        def fn():
            nb.batchnorm_backward(
                a.g, a.xhat, a.gamma, a.invstd, a.gx, a.v2, a.v3, a.tmp, a.v4, a.v5
            )

    run(benchmark, "batchnorm backward, 2048x512", fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_forward(benchmark, a, impl):
    """A fresh mask each call (the RNG is part of the cost), y = x * mask / (1 - p)."""
    counter = iter(range(1 << 62))
    if impl == "fastnn":

        def fn():
            _kernels.dropout_forward(a.x, a.y, a.mask, P, 1 / (1 - P), 12345, next(counter))
    else:

        def fn():
            a.rng.random(out=a.uniform, dtype=np.float32)
            np.greater_equal(a.uniform, P, out=a.keep)
            np.copyto(a.mf, a.keep)
            np.multiply(a.mf, 1.0 / (1.0 - P), out=a.mf)
            np.multiply(a.x, a.mf, out=a.y)

    run(benchmark, "dropout forward (with RNG), 2048x512", fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_backward(benchmark, a, impl):
    _kernels.dropout_forward(a.x, a.y, a.mask, P, 1 / (1 - P), 1, 0)
    np.multiply(a.mask, 1.0 / (1.0 - P), out=a.mf)
    if impl == "fastnn":
        fn = lambda: _kernels.dropout_backward(a.g, a.mask, 1 / (1 - P), a.gx)  # noqa: E731
    else:
        fn = lambda: np.multiply(a.g, a.mf, out=a.gx)  # noqa: E731
    run(benchmark, "dropout backward, 2048x512", fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_softmax_cross_entropy(benchmark, a, impl):
    """Loss and gradient of (2048, 10) logits."""
    if impl == "fastnn":

        def fn():
            _kernels.softmax_xent(a.logits, a.labels, 0.0, a.lgrad, a.row_loss)
    else:

        def fn():
            nb.softmax_cross_entropy(
                a.logits, a.flat_index, a.lgrad, a.rowmax, a.rowsum, a.rowlog, a.picked
            )

    run(benchmark, "softmax cross-entropy + grad, 2048x10", fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_adam_step_10m(benchmark, impl):
    """One Adam update over a flat buffer of 10M float32 parameters (28 B/parameter)."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal(ADAM_PARAMS, dtype=np.float32) * 0.1
    grad = rng.standard_normal(ADAM_PARAMS, dtype=np.float32) * 1e-3
    if impl == "fastnn":
        p = Parameter(data)
        p.grad = grad
        fn = Adam([p], lr=1e-3).step
    else:
        m, v, tmp = np.zeros_like(data), np.zeros_like(data), np.empty_like(data)
        step = iter(range(1, 1 << 62))

        def fn():
            nb.adam_step(data, grad, m, v, tmp, next(step))

    run(benchmark, "Adam step, 10M float32 parameters", fn)
