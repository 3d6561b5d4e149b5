"""Shared fixtures for fastnn's tests.

- `dtype`: float32 and float64 (a test taking it runs once per dtype).
- `tol`: assert_allclose keyword arguments (rtol, atol) suited to `dtype`.
- `threads`: runs the test with 1 and with 2 kernel/BLAS threads, restoring the
  previous count afterwards.
- `use_threads`: a context manager factory, `with use_threads(2): ...`, for tests that
  compare results across thread counts inside one test.
- `num_grad`: central finite differences in float64 (see `central_diff`).
- `rng`: a fresh, fixed-seed NumPy Generator.
"""

import contextlib

import numpy as np
import pytest
from hypothesis import settings

import fastnn

# Property-based tests draw the same examples on every run, so CI is reproducible, with
# a fixed budget of examples per test (tests that set max_examples keep theirs) and no
# per-example deadline (the sanitizer job runs them several times slower);
# `pytest --hypothesis-profile=explore` searches ten times as many new ones.
settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None)
settings.register_profile("explore", derandomize=False, max_examples=1000, deadline=None)
settings.load_profile("ci")

# Tests that ask for 2 threads get 2, however busy the machine running them is: the
# thread governor (tests/test_threads_contention.py tests it) stays off.
fastnn.set_dynamic_threads(False)

# Tolerances for results that are not bit-exact: a few float32 ulps, and ~1e-10
# relative in float64 (kernels against NumPy references written in the tests).
TOLERANCES = {
    np.dtype(np.float32): dict(rtol=2e-5, atol=1e-6),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
}

# Agreement expected between an analytic float64 gradient and central differences
# with eps ~ 1e-6 (truncation error ~eps^2, round-off ~1e-16 / eps).
FD_TOL = dict(rtol=1e-6, atol=1e-7)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def tol(dtype):
    return dict(TOLERANCES[np.dtype(dtype)])


@contextlib.contextmanager
def _threads_ctx(n):
    prev = fastnn.get_num_threads()
    fastnn.set_num_threads(n)
    try:
        yield n
    finally:
        fastnn.set_num_threads(prev)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    with _threads_ctx(request.param) as n:
        assert fastnn.get_num_threads() == n
        yield n


@pytest.fixture
def use_threads():
    return _threads_ctx


def central_diff(f, x, eps=1e-6):
    """d f / d x by central differences, f a scalar function of the float64 array x.

    Every entry of x is perturbed by +eps and -eps in place (and restored), so `x` may
    be a parameter's live `.data` array that f reads implicitly; f is called as f(x).
    Returns an array shaped like x."""
    assert x.dtype == np.float64, "finite differences are taken in float64"
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous for in-place perturbation"
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = float(f(x))
        flat[i] = old - eps
        fm = float(f(x))
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return grad


@pytest.fixture
def num_grad():
    return central_diff


@pytest.fixture
def fd_tol():
    return dict(FD_TOL)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)
