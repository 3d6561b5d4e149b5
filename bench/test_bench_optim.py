"""Every optimizer step over one flat buffer of 10M float32 parameters: fastnn's fused
kernel, a NumPy flat-buffer implementation (in-place ufuncs, preallocated scratch) and
torch.optim with foreach=True (and fused=True for Adam/AdamW) when torch imports.

pytest-benchmark cases (one group per optimizer), collected only when asked for:

    pytest bench/test_bench_optim.py --benchmark-only [--benchmark-group-by=group]

Side-by-side table against the streaming bandwidth of the same run (docs/performance.md
target 4: fused optimizer kernels >= 70% of it), at 1 and 2 threads:

    python bench/test_bench_optim.py [--threads 1,2] [--params 10000000] [--repeats 5]

or from Python: `optimizer_table(threads=(1, 2))` (this file, imported by path) prints
the table and returns its rows. GB/s counts the bytes each update must read and write
per parameter (float32): SGD 12 (p, g read; p written), SGD momentum 20, Adam/AdamW 28,
AMSGrad 36, Adagrad 20, RMSprop 20 (+8 centered, +8 momentum), Adadelta 28, Adamax 28,
NAdam 28. "stream" is the best of a large np.copyto and fastnn's own copy kernel (8 B
per element), as in docs/performance.md; "in-place" the best of two in-place updates (np.add
with out=, 12 B, and fastnn's scale kernel, 8 B), which move what they count - a copy
also reads its destination (write-allocate), so an in-place optimizer update can exceed
100% of "stream". Timing: fastnn.bench.harness.measure (interleaved repeats, median).
"""

import argparse
import gc
import math
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _kernels, optim
from fastnn.bench import harness, report
from fastnn.bench.numpy_baseline import adam_step as numpy_adam_step

N_PARAMS = 10_000_000
F32 = np.float32


# --------------------------------------------------------------------------------------
# NumPy flat-buffer steps: state and one or two scratch buffers allocated once; every
# operation writes in place (out=). Scalars are Python floats (NumPy 2's weak scalars,
# so the arithmetic stays float32).
# --------------------------------------------------------------------------------------
def ema(avg, x, decay, tmp):
    """avg = decay avg + (1 - decay) x, in place, as avg += (1 - decay)(x - avg)."""
    np.subtract(x, avg, out=tmp)
    np.multiply(tmp, 1.0 - decay, out=tmp)
    np.add(avg, tmp, out=avg)


def ema_of_square(avg, g, decay, tmp):
    """avg = decay avg + (1 - decay) g^2, in place."""
    np.multiply(avg, decay, out=avg)
    np.multiply(g, 1.0 - decay, out=tmp)
    np.multiply(tmp, g, out=tmp)
    np.add(avg, tmp, out=avg)


class NumpyOptimizer:
    """A NumPy step over flat buffers p, g with `states` zero-initialised state
    buffers and `scratch` temporaries. Subclasses define update()."""

    states, scratch = 0, 1

    def __init__(self, p, g, **hp):
        self.p, self.g, self.hp, self.t = p, g, hp, 0
        self.s = [np.zeros_like(p) for _ in range(self.states)]
        self.tmp = [np.empty_like(p) for _ in range(self.scratch)]

    def step(self):
        self.t += 1
        self.update(self.t, **self.hp)


class NpSGD(NumpyOptimizer):
    def update(self, t, lr):
        (tmp,) = self.tmp
        np.multiply(self.g, lr, out=tmp)
        np.subtract(self.p, tmp, out=self.p)


class NpSGDMomentum(NumpyOptimizer):
    states = 1

    def update(self, t, lr, momentum):
        buf, (tmp,) = self.s[0], self.tmp
        np.multiply(buf, momentum, out=buf)
        np.add(buf, self.g, out=buf)
        np.multiply(buf, lr, out=tmp)
        np.subtract(self.p, tmp, out=self.p)


class NpAdam(NumpyOptimizer):
    """fastnn.bench.numpy_baseline's Adam (AdamW: the decoupled decay first)."""

    states = 2

    def update(self, t, lr, weight_decay=0.0):
        if weight_decay:
            np.multiply(self.p, 1.0 - lr * weight_decay, out=self.p)
        numpy_adam_step(self.p, self.g, self.s[0], self.s[1], self.tmp[0], t, lr=lr)


class NpAdamWAmsgrad(NumpyOptimizer):
    states, scratch = 3, 1

    def update(self, t, lr, weight_decay, b1=0.9, b2=0.999, eps=1e-8):
        p, g, (m, v, vmax), (tmp,) = self.p, self.g, self.s, self.tmp
        np.multiply(p, 1.0 - lr * weight_decay, out=p)
        ema(m, g, b1, tmp)
        ema_of_square(v, g, b2, tmp)
        np.maximum(vmax, v, out=vmax)
        np.sqrt(vmax, out=tmp)
        np.divide(tmp, math.sqrt(1.0 - b2**t), out=tmp)
        np.add(tmp, eps, out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, lr / (1.0 - b1**t), out=tmp)
        np.subtract(p, tmp, out=p)


class NpAdagrad(NumpyOptimizer):
    states = 1

    def update(self, t, lr, eps=1e-10):
        p, g, (s,), (tmp,) = self.p, self.g, self.s, self.tmp
        np.multiply(g, g, out=tmp)
        np.add(s, tmp, out=s)
        np.sqrt(s, out=tmp)
        np.add(tmp, eps, out=tmp)
        np.divide(g, tmp, out=tmp)
        np.multiply(tmp, lr, out=tmp)
        np.subtract(p, tmp, out=p)


class NpRMSprop(NumpyOptimizer):
    states, scratch = 3, 2

    def update(self, t, lr, centered=False, momentum=0.0, alpha=0.99, eps=1e-8):
        p, g, (sq, ga, buf), (tmp, den) = self.p, self.g, self.s, self.tmp
        ema_of_square(sq, g, alpha, tmp)
        if centered:
            ema(ga, g, alpha, tmp)
            np.multiply(ga, ga, out=den)
            np.subtract(sq, den, out=den)
            np.sqrt(den, out=den)
        else:
            np.sqrt(sq, out=den)
        np.add(den, eps, out=den)
        np.divide(g, den, out=tmp)
        if momentum > 0:
            np.multiply(buf, momentum, out=buf)
            np.add(buf, tmp, out=buf)
            np.multiply(buf, lr, out=tmp)
        else:
            np.multiply(tmp, lr, out=tmp)
        np.subtract(p, tmp, out=p)


class NpAdadelta(NumpyOptimizer):
    states, scratch = 2, 2

    def update(self, t, lr=1.0, rho=0.9, eps=1e-6):
        p, g, (sq, acc), (tmp, den) = self.p, self.g, self.s, self.tmp
        ema_of_square(sq, g, rho, tmp)
        np.add(sq, eps, out=den)
        np.sqrt(den, out=den)
        np.add(acc, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(tmp, den, out=tmp)
        np.multiply(tmp, g, out=tmp)  # delta
        np.multiply(tmp, tmp, out=den)
        np.multiply(den, 1.0 - rho, out=den)
        np.multiply(acc, rho, out=acc)
        np.add(acc, den, out=acc)
        np.multiply(tmp, lr, out=tmp)
        np.subtract(p, tmp, out=p)


class NpAdamax(NumpyOptimizer):
    states, scratch = 2, 1

    def update(self, t, lr=2e-3, b1=0.9, b2=0.999, eps=1e-8):
        p, g, (m, u), (tmp,) = self.p, self.g, self.s, self.tmp
        ema(m, g, b1, tmp)
        np.abs(g, out=tmp)
        np.add(tmp, eps, out=tmp)
        np.multiply(u, b2, out=u)
        np.maximum(u, tmp, out=u)
        np.divide(m, u, out=tmp)
        np.multiply(tmp, lr / (1.0 - b1**t), out=tmp)
        np.subtract(p, tmp, out=p)


class NpNAdam(NumpyOptimizer):
    states, scratch = 2, 2

    def __init__(self, p, g, **hp):
        super().__init__(p, g, **hp)
        self.prod = 1.0

    def update(self, t, lr=2e-3, b1=0.9, b2=0.999, eps=1e-8, psi=4e-3):
        p, g, (m, v), (tmp, den) = self.p, self.g, self.s, self.tmp
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        self.prod *= mu
        c_g = -lr * (1.0 - mu) / (1.0 - self.prod)
        c_m = -lr * mu_next / (1.0 - self.prod * mu_next)
        ema(m, g, b1, tmp)
        ema_of_square(v, g, b2, tmp)
        np.multiply(v, 1.0 / (1.0 - b2**t), out=den)
        np.sqrt(den, out=den)
        np.add(den, eps, out=den)
        np.divide(g, den, out=tmp)
        np.multiply(tmp, c_g, out=tmp)
        np.add(p, tmp, out=p)
        np.divide(m, den, out=tmp)
        np.multiply(tmp, c_m, out=tmp)
        np.add(p, tmp, out=p)


# --------------------------------------------------------------------------------------
# The cases: name -> (fastnn optimizer and kwargs, NumPy class and kwargs, torch
# optimizer and kwargs, bytes per parameter, torch fused available)
# --------------------------------------------------------------------------------------
CONFIGS = {
    "SGD": ("SGD", dict(lr=1e-3), NpSGD, dict(lr=1e-3), 12, False),
    "SGD momentum": (
        "SGD",
        dict(lr=1e-3, momentum=0.9),
        NpSGDMomentum,
        dict(lr=1e-3, momentum=0.9),
        20,
        False,
    ),
    "Adam": ("Adam", dict(lr=1e-3), NpAdam, dict(lr=1e-3), 28, True),
    "AdamW": ("AdamW", dict(lr=1e-3), NpAdam, dict(lr=1e-3, weight_decay=1e-2), 28, True),
    "AdamW amsgrad": (
        "AdamW",
        dict(lr=1e-3, amsgrad=True),
        NpAdamWAmsgrad,
        dict(lr=1e-3, weight_decay=1e-2),
        36,
        True,
    ),
    "Adagrad": ("Adagrad", dict(lr=1e-2), NpAdagrad, dict(lr=1e-2), 20, False),
    "RMSprop": ("RMSprop", dict(lr=1e-2), NpRMSprop, dict(lr=1e-2), 20, False),
    "RMSprop centered": (
        "RMSprop",
        dict(lr=1e-2, centered=True),
        NpRMSprop,
        dict(lr=1e-2, centered=True),
        28,
        False,
    ),
    "RMSprop momentum": (
        "RMSprop",
        dict(lr=1e-2, momentum=0.9),
        NpRMSprop,
        dict(lr=1e-2, momentum=0.9),
        28,
        False,
    ),
    "RMSprop centered+momentum": (
        "RMSprop",
        dict(lr=1e-2, centered=True, momentum=0.9),
        NpRMSprop,
        dict(lr=1e-2, centered=True, momentum=0.9),
        36,
        False,
    ),
    "Adadelta": ("Adadelta", dict(), NpAdadelta, dict(), 28, False),
    "Adamax": ("Adamax", dict(), NpAdamax, dict(), 28, False),
    "NAdam": ("NAdam", dict(), NpNAdam, dict(), 28, False),
}
IMPLS = ["fastnn", "numpy", "torch_foreach", "torch_fused"]


def _import_torch():
    try:
        import torch
    except Exception:
        return None
    return torch


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n, dtype=F32) * 0.1, rng.standard_normal(n, dtype=F32) * 1e-3)


def make_step(config, impl, n=N_PARAMS, torch=None):
    """A zero-argument callable doing one update of `config` (a CONFIGS key) with
    `impl` over n float32 parameters, or None if that combination does not exist."""
    fname, fopts, np_cls, np_opts, _, has_fused = CONFIGS[config]
    data, grad = _data(n)
    if impl == "fastnn":
        p = fastnn.Parameter(data)
        opt = getattr(optim, fname)([p], **fopts)
        p.grad[...] = grad
        return opt.step
    if impl == "numpy":
        return np_cls(data, grad, **np_opts).step
    if torch is None or (impl == "torch_fused" and not has_fused):
        return None
    t = torch.from_numpy(data).requires_grad_(True)
    t.grad = torch.from_numpy(grad)
    kind = {"foreach": True} if impl == "torch_foreach" else {"fused": True}
    return getattr(torch.optim, fname)([t], **fopts, **kind).step


def stream_cases(n=N_PARAMS):
    """The streaming-bandwidth probes over 3n float32 elements: (name, fn, bytes per
    call). The first two are docs/performance.md's "stream" (copies, 8 B per element); the
    last two update in place as the optimizers do (no write-allocate traffic that the
    byte count misses)."""
    rows = 1000
    m = 3 * n  # 120 MB arrays for 10M parameters: well beyond any cache
    x = np.random.default_rng(1).standard_normal((rows, m // rows), dtype=F32)
    y = np.ones_like(x)
    z = np.ones_like(x)
    fx, fy, fz = x.reshape(-1), y.reshape(-1), z.reshape(-1)
    return [
        ("copy: np.copyto", lambda: np.copyto(fy, fx), 8 * x.size),
        (
            "copy: fastnn kernel",
            lambda: _kernels.bias_act(_kernels.ACT_IDENTITY, 0.0, 0.0, None, x, y),
            8 * x.size,
        ),
        ("in place: np.add(z, x, out=z)", lambda: np.add(fz, fx, out=fz), 12 * x.size),
        ("in place: fastnn scale(z, 1)", lambda: _kernels.scale(fz, 1.0), 8 * x.size),
    ]


COPY_PROBES = 2  # the first two stream_cases define "stream"


# --------------------------------------------------------------------------------------
# pytest-benchmark cases
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", list(CONFIGS))
def test_numpy_step_does_the_same_update_as_fastnn(config):
    """The NumPy steps are what fastnn's speed is compared with: they must compute the
    same update, or the comparison flatters one side."""
    fname, fopts, np_cls, np_opts, _, _ = CONFIGS[config]
    data, grad = _data(1000)
    grad *= 1e3  # O(1) gradients: SGD's 5 steps then move p by ~5e-3, well above atol
    p = fastnn.Parameter(data.copy())
    opt = getattr(optim, fname)([p], **fopts)
    p.grad[...] = grad
    ref = np_cls(data.copy(), grad.copy(), **np_opts)
    for _ in range(5):
        opt.step()
        ref.step()
    assert not np.array_equal(ref.p, data)
    np.testing.assert_allclose(p.data, ref.p, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_optimizer_step(benchmark, config, impl):
    torch = _import_torch() if impl.startswith("torch") else None
    if impl.startswith("torch") and torch is None:
        pytest.skip("torch is not importable")
    step = make_step(config, impl, torch=torch)
    if step is None:
        pytest.skip(f"torch has no fused {config}")
    for _ in range(2):  # warm-up: lazy state, page faults
        step()
    benchmark.group = f"{config} step, {N_PARAMS / 1e6:g}M float32 parameters"
    benchmark.extra_info["bytes_per_call"] = CONFIGS[config][4] * N_PARAMS
    benchmark(step)


@pytest.mark.parametrize("impl", ["numpy", "fastnn"])
def test_stream_copy(benchmark, impl):
    name, fn, nbytes = stream_cases()[0 if impl == "numpy" else 1]
    benchmark.group = f"stream copy, {3 * N_PARAMS / 1e6:g}M float32"
    benchmark.extra_info["bytes_per_call"] = nbytes
    benchmark(fn)


# --------------------------------------------------------------------------------------
# The side-by-side table
# --------------------------------------------------------------------------------------
def _ms(r):
    return r["median_s"] * 1e3


def optimizer_table(
    threads=(1, 2), n=N_PARAMS, repeats=5, min_time=0.15, configs=None, out=sys.stdout, log=None
):
    """Time every optimizer (fastnn, NumPy, torch foreach / fused) at each thread count
    and print one table per thread count; returns the rows (dicts).

    Each optimizer is timed in one interleaved group together with the two stream
    probes (np.copyto and fastnn's copy kernel), so that its fraction of the streaming
    bandwidth is a ratio measured side by side even when the machine's load drifts."""
    torch = _import_torch()
    configs = list(configs or CONFIGS)
    all_rows = []
    for nt in threads:
        harness.set_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        probes = [harness.Case(name, fn, nbytes) for name, fn, nbytes in stream_cases(n)]
        rows = []
        for config in configs:
            nbytes = CONFIGS[config][4] * n
            steps = {impl: make_step(config, impl, n, torch) for impl in IMPLS}
            cases = probes + [
                harness.Case(impl, fn, nbytes) for impl, fn in steps.items() if fn is not None
            ]
            r = harness.measure(cases, repeats, min_time, 0.1)
            stream = max(r[c.name]["items_per_s"] for c in probes[:COPY_PROBES])
            in_place = max(r[c.name]["items_per_s"] for c in probes[COPY_PROBES:])
            f = r["fastnn"]
            row = {
                "threads": nt,
                "optimizer": config,
                "bytes_per_param": CONFIGS[config][4],
                "stream_GBps": stream / 1e9,
                "in_place_GBps": in_place / 1e9,
                "fastnn_ms": _ms(f),
                "fastnn_GBps": f["items_per_s"] / 1e9,
                "of_stream": f["items_per_s"] / stream,
                "of_in_place": f["items_per_s"] / in_place,
                "numpy_ms": _ms(r["numpy"]),
                "vs_numpy": r["numpy"]["median_s"] / f["median_s"],
                "background_cpu": f["background_cpu"],
            }
            for impl in ("torch_foreach", "torch_fused"):
                if impl in r:
                    row[f"{impl}_ms"] = _ms(r[impl])
                    row[f"vs_{impl}"] = r[impl]["median_s"] / f["median_s"]
            rows.append(row)
            if log:
                log(
                    f"threads={nt} {config}: {row['fastnn_GBps']:.1f} GB/s, stream "
                    f"{row['stream_GBps']:.1f} GB/s"
                )
            del steps, cases, r
            gc.collect()
        del probes
        all_rows += rows
        _print_table(rows, nt, torch, n, out)
    return all_rows


def _print_table(rows, nt, torch, n, out):
    print(
        f"\nOptimizer step over {n / 1e6:g}M float32 parameters, {nt} thread(s). "
        "stream: best copy (np.copyto, fastnn), in-place: best in-place update "
        "(np.add out=, fastnn scale), both timed in the same interleaved group as "
        "the row",
        file=out,
    )
    headers = [
        "optimizer",
        "B/param",
        "fastnn ms",
        "GB/s",
        "stream GB/s",
        "of stream",
        "in-place GB/s",
        "of in-place",
        "numpy ms",
        "x numpy",
    ]
    if torch is not None:
        headers += ["foreach ms", "x foreach", "fused ms", "x fused"]
    headers += ["bg CPU", ">=70%"]
    body = []
    for r in rows:
        cells = [
            r["optimizer"],
            r["bytes_per_param"],
            f"{r['fastnn_ms']:.2f}",
            f"{r['fastnn_GBps']:.1f}",
            f"{r['stream_GBps']:.1f}",
            f"{100 * r['of_stream']:.0f}%",
            f"{r['in_place_GBps']:.1f}",
            f"{100 * r['of_in_place']:.0f}%",
            f"{r['numpy_ms']:.2f}",
            f"{r['vs_numpy']:.2f}x",
        ]
        if torch is not None:
            for impl in ("torch_foreach", "torch_fused"):
                if f"{impl}_ms" in r:
                    cells += [f"{r[impl + '_ms']:.2f}", f"{r['vs_' + impl]:.2f}x"]
                else:
                    cells += ["-", "-"]
        bg = r["background_cpu"]
        cells += [
            "?" if bg is None else f"{100 * bg:.0f}%",
            "met" if r["of_stream"] >= 0.70 else "NOT met",
        ]
        body.append(cells)
    print(report._table(headers, body, ["l"] + ["r"] * (len(headers) - 1)), file=out)
    print(
        "x numpy / x foreach / x fused: their median time / fastnn's (> 1: fastnn "
        "faster); bg CPU: share of the machine other processes used meanwhile",
        file=out,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--params", type=int, default=N_PARAMS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--min-time", type=float, default=0.15, help="seconds of calls per repeat and case"
    )
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated optimizer names (default: all), e.g. 'Adam,NAdam'",
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    configs = args.only.split(",") if args.only else None
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.verbose else None
    optimizer_table(threads, args.params, args.repeats, args.min_time, configs, log=log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
