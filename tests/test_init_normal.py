"""Normal and truncated normal initialisation (csrc/init.c): the inverse normal CDF of
counter-based uniform draws, checked against a NumPy/SciPy reference built from the
same random bits, against the normal distribution, across thread counts, and for the
memory a large layer's construction takes."""

import math
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from scipy import special, stats

import fastnn
from fastnn import _kernels, init

N = 200_003  # odd, and above the parallel threshold: both threads get a share
assert N >= _kernels.PARALLEL_MIN_ELEMENTS


def _bits(seed, which, n):
    """The 32 random bits of elements [0, n) under the init key `which` (0: the first,
    1: the second) of block 0: init.c's key(seed, block 0, which) is the dropout key of
    counter `which` (csrc/random.h)."""
    out = np.empty(n, np.uint32)
    _kernels.random_bits(seed, which, out)
    return out


def _reference_uniform(seed, n, dtype):
    """init.c's open uniforms: 23 bits (float32) or 52 bits (float64) at odd multiples
    of half a step."""
    b1 = _bits(seed, 0, n)
    if dtype == np.float32:
        return ((b1 >> 9).astype(np.float64) + 0.5) * 2.0**-23
    b2 = _bits(seed, 1, n)
    return ((b1 >> 6).astype(np.float64) * 2.0**26 + (b2 >> 6) + 0.5) * 2.0**-52


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-6), (np.float64, 1e-11)])
def test_normal_kernel_is_the_normal_quantile_of_its_uniforms(dtype, rtol):
    x = np.empty(N, dtype)
    _kernels.init_normal(x, 11, 0.5, 2.0)
    ref = 0.5 + 2.0 * special.ndtri(_reference_uniform(11, N, dtype))
    np.testing.assert_allclose(x, ref, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "mean,std,a,b", [(1.0, 2.0, -1.0, 2.0), (0.0, 1.0, 4.0, 6.0), (0.0, 0.02, -2.0, 2.0)]
)
def test_trunc_normal_kernel_against_its_reference(dtype, mean, std, a, b):
    x = np.empty(N, dtype)
    _kernels.init_trunc_normal(x, 5, mean, std, a, b)
    u = _reference_uniform(5, N, np.float64)  # drawn in double for either dtype
    lo, hi, sign = (a - mean) / std, (b - mean) / std, 1.0
    if lo > 0:  # drawn mirrored into the lower half, where p is precise
        lo, hi, sign = -hi, -lo, -1.0
    p0, p1 = special.ndtr(lo), special.ndtr(hi)
    ref = np.clip(mean + std * sign * special.ndtri(p0 + (p1 - p0) * u), a, b)
    tol = 1e-6 if dtype == np.float32 else 1e-10  # (float32: the unrefined quantile)
    np.testing.assert_allclose(x, ref.astype(dtype), rtol=tol, atol=tol * std)
    assert x.min() >= a and x.max() <= b
    # the draw follows the truncated normal (a test of the reference, too)
    dist = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert stats.kstest(x.astype(np.float64), dist.cdf).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_draws_follow_the_normal_distribution(dtype):
    fastnn.seed(0)
    x = init.normal_(np.empty(1_000_000, dtype), 3.0, 0.5)
    z = (x.astype(np.float64) - 3.0) / 0.5
    se = 1 / math.sqrt(z.size)
    assert abs(z.mean()) < 4 * se and abs(z.std() - 1) < 4 * se * math.sqrt(0.5)
    assert abs(stats.skew(z)) < 4 * se * math.sqrt(6)
    assert abs(stats.kurtosis(z)) < 4 * se * math.sqrt(24)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert np.abs(z).max() > 4.5  # the tails are there


def test_normal_draws_do_not_depend_on_the_thread_count(use_threads):
    draws = {}
    for n in (1, 2, 3):
        with use_threads(n):
            for dtype in (np.float32, np.float64):
                fastnn.seed(7)
                w = init.kaiming_normal_(np.empty((700, 301), dtype))
                t = init.trunc_normal_(np.empty(N, dtype), std=0.02)
                draws.setdefault(dtype, []).append((w, t))
    for runs in draws.values():
        for w, t in runs[1:]:
            np.testing.assert_array_equal(w, runs[0][0])
            np.testing.assert_array_equal(t, runs[0][1])


@pytest.mark.parametrize("name", ["he_normal", "xavier_normal", "trunc_normal", "normal"])
def test_same_seed_same_weights(name):
    fastnn.seed(3)
    a = fastnn.Dense(300, 200, init=name)
    fastnn.seed(3)
    b = fastnn.Dense(300, 200, init=name)
    fastnn.seed(4)
    c = fastnn.Dense(300, 200, init=name)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


def test_initialisers_scale_as_torch_defines_them():
    fastnn.seed(1)
    w = init.kaiming_normal_(np.empty((400, 500), np.float32), nonlinearity="relu")
    assert abs(w.std() / (math.sqrt(2) / math.sqrt(500)) - 1) < 0.01
    w = init.xavier_normal_(np.empty((400, 500), np.float32), gain=2.0)
    assert abs(w.std() / (2.0 * math.sqrt(2 / 900)) - 1) < 0.01
    t = init.trunc_normal_(np.empty(N), mean=0.5, std=1.0, a=-0.5, b=1.0)
    dist = stats.truncnorm(-1.0, 0.5, loc=0.5, scale=1.0)
    assert abs(t.mean() - dist.mean()) < 4 * dist.std() / math.sqrt(N)


def test_a_strided_or_integer_tensor_gets_the_values_a_contiguous_one_would():
    fastnn.seed(9)
    contiguous = init.normal_(np.empty((50, 40)), 1.0, 2.0)
    fastnn.seed(9)
    strided = init.normal_(np.zeros((50, 80))[:, ::2], 1.0, 2.0)
    np.testing.assert_array_equal(strided, contiguous)
    fastnn.seed(9)
    ints = init.normal_(np.zeros((50, 40), np.int64), 1.0, 2.0)
    np.testing.assert_array_equal(ints, contiguous.astype(np.int64))


def test_bad_normal_arguments_are_refused_by_name():
    x = np.empty(10)
    with pytest.raises(ValueError, match="normal_: std must be >= 0, got -1.0"):
        init.normal_(x, 0.0, -1.0)
    with pytest.raises(ValueError, match="normal_: mean must be a finite number"):
        init.normal_(x, float("nan"))
    with pytest.raises(ValueError, match="trunc_normal_: std must be > 0"):
        init.trunc_normal_(x, std=0.0)
    with pytest.raises(ValueError, match="trunc_normal_: b must be a finite number"):
        init.trunc_normal_(x, b=float("inf"))
    with pytest.raises(ValueError, match="need std > 0 and a < b"):
        _kernels.init_trunc_normal(x, 0, 0.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("name", ["he_normal", "trunc_normal"])
def test_construction_with_a_normal_init_peaks_at_its_parameter_bytes(name):
    # Dense(4096, 4096): 64 MiB of weights, drawn in place (the truncated normal's
    # resampling in NumPy took three boolean masks of the weights' size: 1.75x).
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
                import sys, numpy as np, fastnn
                def status(field):
                    with open("/proc/self/status") as f:
                        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field))
                name = sys.argv[1]
                fastnn.Dense(8, 8, init=name)  # first-use costs out of the way
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # peak RSS := current RSS
                before = status("VmRSS:")
                layer = fastnn.Dense(4096, 4096, init=name)
                peak = status("VmHWM:")
                nbytes = sum(p.data.nbytes for p in layer.parameters())
                assert np.isfinite(layer.weight.data).all() and layer.weight.data.std() > 0
                print((peak - before) / nbytes)
            """),
            name,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),  # not the source tree, which python -c would import
    )
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) <= 1.3
