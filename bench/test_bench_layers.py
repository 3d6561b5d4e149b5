"""Layer families, fastnn next to NumPy: forward + backward of every activation and
normalisation layer at (128, 512) and (2048, 512) float32, one benchmark group per
case and shape (the first is below fastnn's parallel threshold, the second above).

fastnn runs the hot path the Trainer uses (`layer._forward` / `layer._backward`,
workspaces reused, no copies). The NumPy counterparts are written as well as NumPy
allows: every buffer preallocated, every ufunc with `out=`, masks as bool arrays,
scipy.special ufuncs (expit, erf) where NumPy has none. Layers that need more than
2 axes see the same 512 features per sample as (8, 64) or (8, 8, 8). Before timing,
each case checks that both implementations agree (float32 tolerance).

    pytest bench/test_bench_layers.py --benchmark-only
    FASTNN_BENCH_THREADS=1 pytest bench/test_bench_layers.py --benchmark-only

pytest-benchmark times each case on its own; for the ratios docs/performance.md asks for
(fastnn and NumPy interleaved in one run, median), run the file as a script:

    python bench/test_bench_layers.py --threads 1 [--repeats 15] [--case Norm]
"""

import math

import numpy as np
import pytest
from scipy import special

from fastnn import (
    ELU,
    GELU,
    RBF,
    AbsReLU,
    BatchNorm1d,
    BatchNorm2d,
    GroupNorm,
    HardTanh,
    InstanceNorm1d,
    LayerNorm,
    LeakyReLU,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from fastnn.bench import numpy_baseline as nb
from fastnn.context import Context

F = 512
SHAPES = [128, 2048]  # rows; every case has 512 features per sample
f32 = np.float32
EPS = 1e-5


def empty(*shape, dtype=f32):
    return np.empty(shape, dtype)


# ------------------------------------------------------------- NumPy implementations
class NumpyCase:
    """Buffers for one batch size; run(x, g) -> (y, gx)."""

    def __init__(self, n, layer):
        self.n = n
        self.y, self.gx, self.t, self.t2 = (empty(n, F) for _ in range(4))
        self.mask, self.mask2 = (np.empty((n, F), np.bool_) for _ in range(2))
        self.setup(layer)

    def setup(self, layer):
        pass


class NpReLU(NumpyCase):
    def run(self, x, g):
        np.maximum(x, 0, out=self.y)
        np.greater(x, 0, out=self.mask)
        np.multiply(g, self.mask, out=self.gx)
        return self.y, self.gx


class NpLeakyReLU(NumpyCase):
    def setup(self, layer):
        self.s = f32(layer.negative_slope)

    def run(self, x, g):  # 0 < slope < 1: max(x, slope x)
        np.multiply(x, self.s, out=self.t)
        np.maximum(x, self.t, out=self.y)
        np.greater(x, 0, out=self.mask)
        np.multiply(g, self.s, out=self.gx)
        np.copyto(self.gx, g, where=self.mask)
        return self.y, self.gx


class NpPReLU(NumpyCase):
    def setup(self, layer):
        self.a = layer.weight.data.copy()
        self.ga, self.ga_tmp = np.zeros(F, f32), empty(F)

    def run(self, x, g):
        np.greater(x, 0, out=self.mask)
        np.multiply(x, self.a, out=self.y)
        np.copyto(self.y, x, where=self.mask)
        np.multiply(g, self.a, out=self.gx)
        np.copyto(self.gx, g, where=self.mask)
        np.multiply(g, x, out=self.t)
        np.copyto(self.t, 0, where=self.mask)
        np.sum(self.t, axis=0, out=self.ga_tmp)
        np.add(self.ga, self.ga_tmp, out=self.ga)
        return self.y, self.gx


class NpAbs(NumpyCase):
    def run(self, x, g):
        np.abs(x, out=self.y)
        np.sign(x, out=self.t)
        np.multiply(g, self.t, out=self.gx)
        return self.y, self.gx


class NpSigmoid(NumpyCase):
    def run(self, x, g):
        special.expit(x, out=self.y)
        np.subtract(1, self.y, out=self.t)
        np.multiply(self.t, self.y, out=self.t)
        np.multiply(g, self.t, out=self.gx)
        return self.y, self.gx


class NpTanh(NumpyCase):
    def run(self, x, g):
        np.tanh(x, out=self.y)
        np.multiply(self.y, self.y, out=self.t)
        np.subtract(1, self.t, out=self.t)
        np.multiply(g, self.t, out=self.gx)
        return self.y, self.gx


class NpHardTanh(NumpyCase):
    def setup(self, layer):
        self.lo, self.hi = f32(layer.min_val), f32(layer.max_val)

    def run(self, x, g):
        np.clip(x, self.lo, self.hi, out=self.y)
        np.greater(x, self.lo, out=self.mask)
        np.less(x, self.hi, out=self.mask2)
        np.logical_and(self.mask, self.mask2, out=self.mask)
        np.multiply(g, self.mask, out=self.gx)
        return self.y, self.gx


class NpSoftplus(NumpyCase):
    def setup(self, layer):
        self.beta, self.thr = f32(layer.beta), f32(layer.threshold)

    def run(self, x, g):  # beta = 1
        np.logaddexp(0, x, out=self.y)
        np.greater(x, self.thr, out=self.mask)
        np.copyto(self.y, x, where=self.mask)
        special.expit(x, out=self.t)
        np.copyto(self.t, 1, where=self.mask)
        np.multiply(g, self.t, out=self.gx)
        return self.y, self.gx


class NpELU(NumpyCase):
    def setup(self, layer):
        self.alpha = f32(layer.alpha)

    def run(self, x, g):
        np.greater(x, 0, out=self.mask)
        np.minimum(x, 0, out=self.t)
        np.expm1(self.t, out=self.t)
        np.multiply(self.t, self.alpha, out=self.y)
        np.copyto(self.y, x, where=self.mask)
        np.add(self.y, self.alpha, out=self.t)  # alpha exp(x) = y + alpha for x <= 0
        np.copyto(self.t, 1, where=self.mask)
        np.multiply(g, self.t, out=self.gx)
        return self.y, self.gx


class NpGELU(NumpyCase):
    def run(self, x, g):
        np.multiply(x, f32(1 / math.sqrt(2)), out=self.t)
        special.erf(self.t, out=self.t)
        np.add(self.t, 1, out=self.t)
        np.multiply(self.t, f32(0.5), out=self.t)  # Phi(x)
        np.multiply(x, self.t, out=self.y)
        np.multiply(x, x, out=self.t2)
        np.multiply(self.t2, f32(-0.5), out=self.t2)
        np.exp(self.t2, out=self.t2)
        np.multiply(self.t2, f32(1 / math.sqrt(2 * math.pi)), out=self.t2)
        np.multiply(self.t2, x, out=self.t2)
        np.add(self.t2, self.t, out=self.t2)  # Phi + x phi
        np.multiply(g, self.t2, out=self.gx)
        return self.y, self.gx


class NpGELUTanh(NumpyCase):
    K, C = f32(math.sqrt(2 / math.pi)), f32(0.044715)

    def run(self, x, g):
        K, C = self.K, self.C
        t, t2, u = self.t, self.t2, self.gx  # gx doubles as scratch until the end
        np.multiply(x, x, out=t2)  # x^2
        np.multiply(t2, C, out=t)
        np.add(t, 1, out=t)
        np.multiply(t, x, out=t)
        np.multiply(t, K, out=t)
        np.tanh(t, out=t)  # tanh(inner)
        np.add(t, 1, out=u)
        np.multiply(u, f32(0.5), out=u)  # 0.5 (1 + t)
        np.multiply(x, u, out=self.y)
        # derivative: 0.5 (1 + t) + 0.5 x (1 - t^2) K (1 + 3 C x^2)
        np.multiply(t, t, out=t)
        np.subtract(1, t, out=t)
        np.multiply(t2, 3 * C, out=t2)
        np.add(t2, 1, out=t2)
        np.multiply(t, t2, out=t)
        np.multiply(t, x, out=t)
        np.multiply(t, f32(0.5) * K, out=t)
        np.add(t, u, out=t)
        np.multiply(g, t, out=self.gx)
        return self.y, self.gx


class NpSoftmax(NumpyCase):
    def setup(self, layer):
        self.r1, self.r2 = empty(self.n, 1), empty(self.n, 1)

    def run(self, x, g):
        np.max(x, axis=1, keepdims=True, out=self.r1)
        np.subtract(x, self.r1, out=self.y)
        np.exp(self.y, out=self.y)
        np.sum(self.y, axis=1, keepdims=True, out=self.r1)
        np.divide(self.y, self.r1, out=self.y)
        np.multiply(g, self.y, out=self.t)
        np.sum(self.t, axis=1, keepdims=True, out=self.r2)
        np.subtract(g, self.r2, out=self.t)
        np.multiply(self.y, self.t, out=self.gx)
        return self.y, self.gx


class NpMaxout(NumpyCase):
    """Maxout(512, 128, pieces=4): one (n, 512) x (512, 512) GEMM, max over pieces."""

    def setup(self, layer):
        self.W, self.b = layer.weight.data.copy(), layer.bias.data.copy()
        self.units, self.pieces = layer.out_features, layer.pieces
        n = self.n
        self.z = empty(n, self.W.shape[0])
        self.yo = empty(n, self.units)
        self.idx = np.empty((n, self.units), np.intp)
        self.gW, self.gW_tmp = np.zeros_like(self.W), np.empty_like(self.W)
        self.gb, self.gb_tmp = np.zeros_like(self.b), np.empty_like(self.b)

    def run(self, x, g):
        n = self.n
        np.matmul(x, self.W.T, out=self.z)
        np.add(self.z, self.b, out=self.z)
        zr = self.z.reshape(n, self.units, self.pieces)
        np.max(zr, axis=2, out=self.yo)
        np.argmax(zr, axis=2, out=self.idx)
        gz = self.z  # reuse: z is not needed any more
        gz.fill(0)
        np.put_along_axis(
            gz.reshape(n, self.units, self.pieces), self.idx[..., None], g[..., None], axis=2
        )
        np.matmul(gz.T, x, out=self.gW_tmp)
        np.add(self.gW, self.gW_tmp, out=self.gW)
        np.sum(gz, axis=0, out=self.gb_tmp)
        np.add(self.gb, self.gb_tmp, out=self.gb)
        np.matmul(gz, self.W, out=self.gx)
        return self.yo, self.gx


class NpRBF(NumpyCase):
    """RBF(512, 64): d2 = |x|^2 - 2 x C^T + |c|^2 (one GEMM), y = exp(-d2 / (2 s^2))."""

    def setup(self, layer):
        self.C, self.s = layer.centers.data.copy(), layer.widths.data.copy()
        n, k = self.n, self.C.shape[0]
        self.d2, self.yo, self.gd2 = empty(n, k), empty(n, k), empty(n, k)
        self.xsq, self.grow = empty(n, 1), empty(n, 1)
        self.csq = np.einsum("ij,ij->i", self.C, self.C)
        self.k1 = f32(-0.5) / (self.s * self.s)  # -1 / (2 s^2)
        self.k2 = f32(1) / (self.s**3)
        self.gC, self.gs = np.zeros_like(self.C), np.zeros_like(self.s)
        self.gC_tmp, self.gs_tmp, self.gsum = (
            np.empty_like(self.C),
            np.empty_like(self.s),
            np.empty_like(self.s),
        )

    def run(self, x, g):
        np.matmul(x, self.C.T, out=self.d2)
        np.multiply(self.d2, -2, out=self.d2)
        np.einsum("ij,ij->i", x, x, out=self.xsq[:, 0])
        np.add(self.d2, self.xsq, out=self.d2)
        np.add(self.d2, self.csq, out=self.d2)
        np.maximum(self.d2, 0, out=self.d2)
        np.multiply(self.d2, self.k1, out=self.yo)
        np.exp(self.yo, out=self.yo)
        # backward
        np.multiply(g, self.yo, out=self.gd2)  # gy * y
        np.multiply(self.gd2, self.d2, out=self.d2)
        np.sum(self.d2, axis=0, out=self.gs_tmp)
        np.multiply(self.gs_tmp, self.k2, out=self.gs_tmp)
        np.add(self.gs, self.gs_tmp, out=self.gs)
        np.multiply(self.gd2, self.k1, out=self.gd2)  # dL/d(d2)
        np.sum(self.gd2, axis=0, out=self.gsum)
        np.sum(self.gd2, axis=1, keepdims=True, out=self.grow)
        np.matmul(self.gd2.T, x, out=self.gC_tmp)
        np.multiply(self.gC_tmp, -2, out=self.gC_tmp)
        np.add(self.gC, self.gC_tmp, out=self.gC)
        np.multiply(self.C, 2 * self.gsum[:, None], out=self.gC_tmp)
        np.add(self.gC, self.gC_tmp, out=self.gC)
        np.matmul(self.gd2, self.C, out=self.gx)
        np.multiply(self.gx, -2, out=self.gx)
        np.multiply(x, 2 * self.grow, out=self.t)
        np.add(self.gx, self.t, out=self.gx)
        return self.yo, self.gx


# ---- normalisations
class NpBatchNorm1d(NumpyCase):
    """bench/numpy_baseline's batch norm (training, running statistics updated)."""

    def setup(self, layer):
        self.gamma, self.beta = layer.weight.data.copy(), layer.bias.data.copy()
        self.rmean, self.rvar = np.zeros(F, f32), np.ones(F, f32)
        self.v = [empty(F) for _ in range(7)]

    def run(self, x, g):
        mean, var, invstd, ggamma, gbeta, c0, c1 = self.v
        nb.batchnorm_forward_train(
            x,
            self.gamma,
            self.beta,
            EPS,
            0.1,
            self.rmean,
            self.rvar,
            self.t2,
            self.y,
            mean,
            var,
            invstd,
            self.t,
        )
        nb.batchnorm_backward(
            g, self.t2, self.gamma, invstd, self.gx, ggamma, gbeta, self.t, c0, c1
        )
        return self.y, self.gx


class _NpGrouped(NumpyCase):
    """Normalise x viewed as (A, B, K) over `axes`, per-channel affine of shape
    `pshape` (broadcast against that view), then the backward:
        gx = invstd * (u - mean(u) - xhat * mean(u * xhat)),  u = gy * weight."""

    view, axes, pshape = None, None, None

    def setup(self, layer):
        self.w = layer.weight.data.reshape(self.pshape).copy()
        self.b = layer.bias.data.reshape(self.pshape).copy()
        sshape = tuple(1 if i in self.axes else s for i, s in enumerate(self.view(self.n)))
        self.mean, self.var, self.c0, self.c1 = (empty(*sshape) for _ in range(4))
        self.gw, self.gb = np.zeros(self.pshape, f32), np.zeros(self.pshape, f32)
        self.pw, self.pb = empty(*self.pshape), empty(*self.pshape)
        self.paxes = tuple(i for i, s in enumerate(self.pshape) if s == 1)
        self.m = f32(1.0 / np.prod([self.view(self.n)[a] for a in self.axes]))

    def run(self, x, g):
        v = self.view(self.n)
        x, g = x.reshape(v), g.reshape(v)
        xhat, y, gx, u = (a.reshape(v) for a in (self.t2, self.y, self.gx, self.t))
        ax = self.axes
        np.mean(x, axis=ax, keepdims=True, out=self.mean)
        np.subtract(x, self.mean, out=xhat)
        np.multiply(xhat, xhat, out=u)
        np.mean(u, axis=ax, keepdims=True, out=self.var)
        np.add(self.var, EPS, out=self.var)
        np.sqrt(self.var, out=self.var)
        np.divide(1, self.var, out=self.var)  # invstd
        np.multiply(xhat, self.var, out=xhat)
        np.multiply(xhat, self.w, out=y)
        np.add(y, self.b, out=y)
        # parameter gradients
        np.multiply(g, xhat, out=u)
        np.sum(u, axis=self.paxes, keepdims=True, out=self.pw)
        np.add(self.gw, self.pw, out=self.gw)
        np.sum(g, axis=self.paxes, keepdims=True, out=self.pb)
        np.add(self.gb, self.pb, out=self.gb)
        # input gradient
        np.multiply(g, self.w, out=u)
        np.mean(u, axis=ax, keepdims=True, out=self.c0)
        np.multiply(u, xhat, out=gx)
        np.mean(gx, axis=ax, keepdims=True, out=self.c1)
        np.multiply(xhat, self.c1, out=gx)
        np.subtract(u, gx, out=gx)
        np.subtract(gx, self.c0, out=gx)
        np.multiply(gx, self.var, out=gx)
        return self.y, self.gx


class NpBatchNorm2d(_NpGrouped):  # (n, 8, 8, 8) as (n, 8, 64), over n and positions
    view, axes, pshape = staticmethod(lambda n: (n, 8, 64)), (0, 2), (1, 8, 1)


class NpLayerNorm(_NpGrouped):  # over the 512 features of each row
    view, axes, pshape = staticmethod(lambda n: (n, 1, F)), (2,), (1, 1, F)


class NpGroupNorm(_NpGrouped):  # 32 groups of 16 channels (inner 1)
    view, axes, pshape = staticmethod(lambda n: (n, 32, 16)), (2,), (1, 32, 16)


class NpInstanceNorm1d(_NpGrouped):  # (n, 8, 64): each sample's channel over 64
    view, axes, pshape = staticmethod(lambda n: (n, 8, 64)), (2,), (1, 8, 1)


# ------------------------------------------------------------------------ the cases
def _random_affine(layer):
    r = np.random.default_rng(1)
    for name, p in layer.named_parameters():
        p.data = r.uniform(0.5, 1.5, p.shape) if name == "weight" else r.normal(0, 0.3, p.shape)
    return layer


# name -> (fastnn layer factory, NumPy class, input shape of one sample)
CASES = {
    "ReLU": (ReLU, NpReLU, (F,)),
    "LeakyReLU": (LeakyReLU, NpLeakyReLU, (F,)),
    "PReLU(512)": (lambda: _prelu(), NpPReLU, (F,)),
    "AbsReLU": (AbsReLU, NpAbs, (F,)),
    "Sigmoid": (Sigmoid, NpSigmoid, (F,)),
    "Tanh": (Tanh, NpTanh, (F,)),
    "HardTanh": (HardTanh, NpHardTanh, (F,)),
    "Softplus": (Softplus, NpSoftplus, (F,)),
    "ELU": (ELU, NpELU, (F,)),
    "GELU": (GELU, NpGELU, (F,)),
    "GELU(tanh)": (lambda: GELU(approximate="tanh"), NpGELUTanh, (F,)),
    "Softmax": (Softmax, NpSoftmax, (F,)),
    "Maxout(512,128,4)": (lambda: Maxout(F, 128, 4), NpMaxout, (F,)),
    "RBF(512,64)": (lambda: _rbf(), NpRBF, (F,)),
    "BatchNorm1d(512)": (lambda: _random_affine(BatchNorm1d(F)), NpBatchNorm1d, (F,)),
    "BatchNorm2d(8)": (lambda: _random_affine(BatchNorm2d(8)), NpBatchNorm2d, (8, 8, 8)),
    "LayerNorm(512)": (lambda: _random_affine(LayerNorm(F)), NpLayerNorm, (F,)),
    "GroupNorm(32,512)": (lambda: _random_affine(GroupNorm(32, F)), NpGroupNorm, (F,)),
    "InstanceNorm1d(8,affine)": (
        lambda: _random_affine(InstanceNorm1d(8, affine=True)),
        NpInstanceNorm1d,
        (8, 64),
    ),
}


def _prelu():
    layer = PReLU(F)
    layer.weight.data = np.random.default_rng(2).uniform(0.05, 0.5, F)
    return layer


def _rbf():
    layer = RBF(F, 64)
    layer.centers.data = np.random.default_rng(3).normal(0, 1 / math.sqrt(F), (64, F))
    layer.widths.data = np.full(64, 1.5)
    return layer


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    out = {}
    for n in SHAPES:
        x = rng.standard_normal((n, F), dtype=f32)
        x[:, :8] *= 30  # some large magnitudes (saturation, Softplus threshold)
        out[n] = (x, rng.standard_normal((n, F), dtype=f32), x / math.sqrt(F))
    return out


class FastnnCase:
    def __init__(self, layer):
        self.layer, self.ctx = layer, Context()  # one call site, as in the Trainer

    def run(self, x, g):
        y = self.layer._forward(self.ctx, x)
        return y, self.layer._backward(self.ctx, g)


@pytest.mark.parametrize("impl", ["fastnn", "numpy"])
@pytest.mark.parametrize("n", SHAPES, ids=[f"{n}x{F}" for n in SHAPES])
@pytest.mark.parametrize("case", list(CASES))
def test_layer_forward_backward(benchmark, arrays, case, n, impl):
    make, np_cls, sample = CASES[case]
    x, g, x_small = arrays[n]
    if case.startswith("RBF"):
        x = x_small  # inputs near the centres: not every unit underflows to 0
    layer = make()
    fast = FastnnCase(layer)
    ref = np_cls(n, layer)
    xs = np.ascontiguousarray(x.reshape((n,) + sample))  # fastnn's input layout
    out_shape = layer.forward(xs).shape
    gs = np.ascontiguousarray(g.reshape(-1)[: math.prod(out_shape)].reshape(out_shape))
    g2 = gs.reshape(n, -1)
    # both compute the same thing (outputs and input gradients, float32 tolerance)
    y_f, gx_f = (a.copy() for a in fast.run(xs, gs))
    y_n, gx_n = ref.run(x, g2)
    np.testing.assert_allclose(y_f.reshape(y_n.shape), y_n, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(
        gx_f.reshape(gx_n.shape), gx_n, rtol=2e-3, atol=2e-3 * np.abs(gx_n).max()
    )
    benchmark.group = f"{case} forward+backward, {n}x{F}"
    if impl == "fastnn":
        benchmark(fast.run, xs, gs)
    else:
        benchmark(ref.run, x, g2)


# ------------------------------------------------------------------ interleaved ratios
def main(argv=None):
    """Side-by-side ratios as docs/performance.md measures them: fastnn and NumPy timed in
    alternation in one process (warm-up, then `repeats` interleaved rounds, median).

        python bench/test_bench_layers.py [--threads 1] [--repeats 15] [--case GELU]
    """
    import argparse
    import time

    import fastnn
    from fastnn.bench import harness

    ap = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--case", default="", help="only cases whose name contains this")
    args = ap.parse_args(argv)
    if args.threads:
        harness.set_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads {fastnn.get_num_threads()}, median of {args.repeats} interleaved rounds")
    print(f"{'case':44s} {'fastnn us':>10s} {'numpy us':>10s} {'numpy/fastnn':>12s}")
    for case, (make, np_cls, sample) in CASES.items():
        if args.case not in case:
            continue
        for n in SHAPES:
            x = rng.standard_normal((n, F), dtype=f32)
            if case.startswith("RBF"):
                x /= math.sqrt(F)
            layer = make()
            fast, ref = FastnnCase(layer), np_cls(n, layer)
            xs = np.ascontiguousarray(x.reshape((n,) + sample))
            out_shape = layer.forward(xs).shape
            gs = rng.standard_normal(out_shape, dtype=f32)
            g2 = gs.reshape(n, -1)
            inner = max(1, int(2e6 // (n * F)))  # ~2M elements per timing
            times = {"fastnn": [], "numpy": []}
            for r in range(args.repeats + 2):
                for name, fn, a, b in (("fastnn", fast.run, xs, gs), ("numpy", ref.run, x, g2)):
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        fn(a, b)
                    if r >= 2:  # two warm-up rounds
                        times[name].append((time.perf_counter() - t0) / inner)
            tf, tn = np.median(times["fastnn"]), np.median(times["numpy"])
            print(
                f"{case + f', {n}x{F}':44s} {tf * 1e6:10.1f} {tn * 1e6:10.1f} {tn / tf:12.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
