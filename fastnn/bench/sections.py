"""The sections of `fastnn bench`: training steps and predict side by side, kernels
against the streaming bandwidth, memory of training, epoch scaling, and the per-phase
breakdown of fastnn's step. Each returns rows (dicts) for the report and the JSON."""

import statistics
import time
import tracemalloc

import numpy as np

import fastnn
from fastnn import _kernels
from fastnn.bench.harness import Case, measure, set_threads
from fastnn.bench.numpy_baseline import adam_step as numpy_adam_step
from fastnn.bench.workloads import (
    N_CLASSES,
    _batches,
    fastnn_mlp_bn,
    fastnn_predict,
    fastnn_train_step,
    gemm_calls,
    gemm_only_step,
    make_data,
    numpy_predict,
    numpy_train_step,
)
from fastnn.module import Context


def _bench_sizes(kind, batches, threads, make_cases, opts, log):
    """For each thread count and batch, time make_cases(batch, threads) side by side;
    one row per case: {"kind", "impl", "batch", "threads", timings, "samples_per_s"}."""
    rows = []
    for t in threads:
        set_threads(t)
        for b in batches:
            res = measure(make_cases(b, t), opts.repeats, opts.min_time, opts.warmup, opts.pause)
            for name, r in res.items():
                rows.append(
                    {
                        "kind": kind,
                        "impl": name,
                        "batch": b,
                        "threads": t,
                        **r,
                        "samples_per_s": r["items_per_s"],
                    }
                )
            log(
                f"  {kind} threads={t} batch={b:5d}: "
                + ", ".join(f"{n} {r['items_per_s']:,.0f}/s" for n, r in res.items())
            )
    return rows


def bench_train(X, y, batches, threads, worker, opts, log):
    def cases(b, t):
        out = [
            Case("fastnn", fastnn_train_step(X, y, b), b),
            Case("numpy", numpy_train_step(X, y, b), b),
        ]
        if worker is not None:
            out += [
                worker.case("torch", "train", b, t),
                worker.case("torch_fused", "train", b, t, fused=True),
            ]
        return out + [Case("gemm_only", gemm_only_step(b), b)]

    return _bench_sizes("train_step", batches, threads, cases, opts, log)


def bench_predict(X, batches, threads, worker, opts, log):
    def cases(b, t):
        out = [Case("fastnn", fastnn_predict(X, b), b), Case("numpy", numpy_predict(X, b), b)]
        if worker is not None:
            out.append(worker.case("torch", "predict", b, t))
        return out

    return _bench_sizes("predict", batches, threads, cases, opts, log)


def bench_kernels(threads, opts, log):
    """fastnn's kernels on large arrays as a fraction of the streaming bandwidth measured
    in the same run (bytes = the minimum each must read and write), plus the NumPy flat
    Adam for reference, and the thread overhead of a small elementwise call."""
    from fastnn.optim import Adam

    set_threads(threads)
    rng = np.random.default_rng(0)
    rows_, cols_ = opts.kernel_shape
    n = rows_ * cols_
    f32 = np.float32
    x = rng.standard_normal((rows_, cols_), dtype=f32)
    y = np.empty_like(x)
    g = rng.standard_normal((rows_, cols_), dtype=f32)
    gx = np.empty_like(x)
    bias = rng.standard_normal(cols_, dtype=f32)
    gbias = np.zeros(cols_, f32)
    mask = np.empty((rows_, cols_), np.uint8)
    gamma, beta = np.ones(cols_, f32), np.zeros(cols_, f32)
    rmean, rvar = np.zeros(cols_, f32), np.ones(cols_, f32)
    mean, invstd = np.empty(cols_, f32), np.empty(cols_, f32)
    scratch = np.empty(_kernels.COLSUM_SCRATCH_ROWS * 2 * cols_)
    k_classes = 10
    logits = rng.standard_normal((n // k_classes, k_classes), dtype=f32)
    labels = rng.integers(0, k_classes, n // k_classes, dtype=np.int64)
    lgrad = np.empty_like(logits)
    row_loss = np.empty(n // k_classes, np.float64)
    flat_src, flat_dst = x.reshape(-1), y.reshape(-1)
    z = x.copy()

    n_adam = opts.adam_params
    p = fastnn.Parameter(rng.standard_normal(n_adam, dtype=f32) * 0.1)
    p.grad[...] = rng.standard_normal(n_adam, dtype=f32) * 1e-3
    opt = Adam([p], lr=1e-3)
    opt.step()
    np_p, np_g = p.data.copy(), p.grad.copy()
    np_m, np_v, np_tmp = np.zeros_like(np_p), np.zeros_like(np_p), np.empty_like(np_p)
    np_step = [0]

    def np_adam():
        np_step[0] += 1
        numpy_adam_step(np_p, np_g, np_m, np_v, np_tmp, np_step[0])

    ACT = _kernels
    cases = [
        # name, fn, bytes moved per call
        (
            "stream copy (fastnn identity kernel)",
            lambda: _kernels.bias_act(ACT.ACT_IDENTITY, 0.0, 0.0, None, x, y),
            8 * n,
        ),
        ("stream copy (np.copyto, 1 thread)", lambda: np.copyto(flat_dst, flat_src), 8 * n),
        (
            "dense fwd: bias + ReLU in place",
            lambda: _kernels.bias_act(ACT.ACT_RELU, 0.0, 0.0, bias, z, z),
            8 * n,
        ),
        (
            "dense bwd: ReLU' + bias grad",
            lambda: _kernels.act_backward(ACT.ACT_RELU, 0.0, 0.0, None, x, g, gx, gbias, scratch),
            12 * n,
        ),
        ("dropout fwd", lambda: _kernels.dropout_forward(x, y, mask, 0.5, 2.0, 1, 2), 9 * n),
        ("dropout bwd", lambda: _kernels.dropout_backward(g, mask, 2.0, gx), 9 * n),
        (
            "batchnorm train fwd",
            lambda: _kernels.bn_forward_train(
                x, gamma, beta, 1e-5, 0.1, rmean, rvar, y, mean, invstd, scratch
            ),
            8 * n,
        ),
        (
            "batchnorm bwd",
            lambda: _kernels.bn_backward(
                True, x, g, gamma, mean, invstd, gx, gbias, gbias, scratch
            ),
            12 * n,
        ),
        (
            "softmax-CE fwd+grad",
            lambda: _kernels.softmax_xent(logits, labels, 0.0, lgrad, row_loss),
            8 * n,
        ),
        (f"Adam step, {n_adam / 1e6:g}M params (fastnn)", opt.step, 28 * n_adam),
        (f"Adam step, {n_adam / 1e6:g}M params (NumPy flat buffer)", np_adam, 28 * n_adam),
    ]
    res = measure(
        [Case(name, fn, nbytes) for name, fn, nbytes in cases],
        opts.repeats,
        opts.min_time,
        opts.warmup,
        opts.pause,
    )
    stream = max(res[cases[0][0]]["items_per_s"], res[cases[1][0]]["items_per_s"])
    rows = []
    for name, _, nbytes in cases:
        r = res[name]
        rows.append(
            {
                "kind": "kernel",
                "impl": name,
                "threads": threads,
                "bytes": nbytes,
                **r,
                "GB_per_s": r["items_per_s"] / 1e9,
                "fraction_of_stream": r["items_per_s"] / stream,
            }
        )
        log(f"  kernel threads={threads} {name}: {r['items_per_s'] / 1e9:.1f} GB/s")

    # Thread-team overhead on a small array (< 32K elements): 1 vs `threads` threads.
    small = rng.standard_normal((16, 512), dtype=f32)
    sb = rng.standard_normal(512, dtype=f32)

    def small_relu():
        for _ in range(100):
            _kernels.bias_act(ACT.ACT_RELU, 0.0, 0.0, sb, small, small)

    set_one = lambda: _kernels.set_num_threads(1)  # noqa: E731
    set_many = lambda: _kernels.set_num_threads(threads)  # noqa: E731
    res = measure(
        [
            Case("1 thread", small_relu, 100, set_one),
            Case(f"{threads} threads", small_relu, 100, set_many),
        ],
        opts.repeats,
        opts.min_time / 2,
        opts.warmup,
        opts.pause,
    )
    set_threads(threads)
    for name, r in res.items():
        rows.append(
            {
                "kind": "small_kernel",
                "impl": f"bias+ReLU (16, 512), {name}",
                "threads": 1 if name == "1 thread" else threads,
                **r,
                "us_per_call": r["median_s"] / 100 * 1e6,
            }
        )
    return rows, stream


def _owner(a):
    """The array that owns a's memory (the end of its .base chain)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def held_bytes(root, exclude=()):
    """Bytes of the distinct NumPy buffers reachable from `root` through fastnn objects
    and the dicts, lists and tuples they hold: parameters, gradients, optimizer state,
    every layer's cached activations and workspaces. Buffers owned by an array in
    `exclude` (the data set, which a step only reads) are not counted."""
    skip = {id(_owner(e)) for e in exclude}
    owners, seen, todo = {}, set(), [root]
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            w = _owner(o)
            if id(w) not in skip:
                owners[id(w)] = w.nbytes
        elif isinstance(o, dict):
            todo.extend(o.values())
        elif isinstance(o, (list, tuple)):
            todo.extend(o)
        elif type(o).__module__.startswith("fastnn") and hasattr(o, "__dict__"):
            todo.extend(vars(o).values())
    return sum(owners.values())


def bench_memory(X, y, batch, threads):
    """Memory of fastnn training steps, by tracemalloc (which sees NumPy's buffers):
    the bytes steady-state steps allocate, and the peak from building the model to the
    sixth step against what the trainer holds at the end (parameters, gradients, Adam
    state, cached activations and workspaces): temporaries would show as the excess."""
    set_threads(threads)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        step = fastnn_train_step(X, y, batch)
        for _ in range(3):
            step()
        warm_peak = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            step()
        cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    params = step.trainer.model.parameters()
    return {
        "kind": "memory",
        "batch": batch,
        "threads": threads,
        "peak_bytes": peak - base,
        "retained_bytes": cur - base,
        "smallest_step_array_bytes": batch * N_CLASSES * 4,
        "step_peak_bytes": max(warm_peak, peak - start),
        "held_bytes": held_bytes(step.trainer, exclude=(X, y)),
        "parameter_bytes": sum(p.data.nbytes for p in params),
    }


def bench_scaling(sizes, batch, threads, log):
    """One epoch of `fit` (shuffled mini-batches of `batch`) on the first N rows of a
    (max(sizes), 784) float32 data set, for each N: the time per sample must not grow
    with N (no super-linear shuffle or copy), and the peak memory fit allocates
    (tracemalloc) must stay far below the data set (no copy of the whole array)."""
    from fastnn.losses import CrossEntropyLoss
    from fastnn.optim import Adam

    set_threads(threads)
    X, y = make_data(n=max(sizes))
    rows = []
    for n in sizes:
        fastnn.seed(0)
        model = fastnn_mlp_bn()
        trainer = fastnn.Trainer(
            model, CrossEntropyLoss(), Adam(model.parameters(), lr=1e-3), metrics=()
        )
        trainer.fit(
            X[: 4 * batch], y[: 4 * batch], epochs=1, batch_size=batch, verbose=0
        )  # warm-up
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            t0 = time.perf_counter()
            trainer.fit(X[:n], y[:n], epochs=2, batch_size=batch, verbose=0)  # one more epoch
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        rows.append(
            {
                "kind": "scaling",
                "n": n,
                "batch": batch,
                "threads": threads,
                "epoch_s": seconds,
                "us_per_sample": 1e6 * seconds / n,
                "fit_peak_bytes": peak,
                "data_bytes": X[:n].nbytes,
            }
        )
        log(
            f"  scaling threads={threads} N={n}: epoch {seconds:.2f} s, "
            f"{rows[-1]['us_per_sample']:.2f} us/sample, fit peak {peak / 1e6:.0f} MB"
        )
    return rows


def bench_breakdown(X, y, batch, threads, opts):
    """Where fastnn's step spends its time: each layer's forward and backward, the
    loss, zero_grad and the optimizer, timed call by call (perf_counter) in an
    instrumented copy of Trainer.train_step; and the 8 GEMMs alone at the step's
    shapes. The instrumented step, the plain step and each GEMM are interleaved like
    every other measurement; each figure is the median over the repeats."""
    set_threads(threads)
    step = fastnn_train_step(X, y, batch)
    trainer = step.trainer
    model, loss, opt = trainer.model, trainer.loss, trainer.optimizer
    plan = [st.run for st in model.steps]
    names = [
        f"{model.layers.index(st.layers[0])} "
        + "+".join(type(layer).__name__ for layer in st.layers)
        for st in model.steps
    ]
    ctxs = [Context() for _ in plan]
    acc, calls = {}, [0]

    def add(key, dt):
        acc[key] = acc.get(key, 0.0) + dt

    starts = _batches(X.shape[0], batch)
    pc = time.perf_counter

    def instrumented():
        s = next(starts)
        xb, yb = X[s : s + batch], y[s : s + batch]
        t0 = pc()
        model.train()
        t1 = pc()
        add("model.train() in train_step", t1 - t0)
        opt.zero_grad()
        t2 = pc()
        add("zero_grad", t2 - t1)
        h = xb
        for name, st, c in zip(names, plan, ctxs):
            ta = pc()
            h = st._forward(c, h)
            add(f"fwd {name}", pc() - ta)
        ta = pc()
        loss(h, yb)
        gl = loss._backward()
        add("loss (softmax-CE + grad)", pc() - ta)
        for i in range(len(plan) - 1, -1, -1):
            ta = pc()
            gl = plan[i]._backward(ctxs[i], gl, i > 0)
            add(f"bwd {names[i]}", pc() - ta)
        ta = pc()
        opt.step()
        add("Adam step", pc() - ta)
        calls[0] += 1

    blocks, last = [], [None]

    def block_start():  # close the previous block of instrumented calls
        if last[0] is not None and calls[0] > last[0][1]:
            n = calls[0] - last[0][1]
            blocks.append({k: (v - last[0][0].get(k, 0.0)) / n for k, v in acc.items()})
        last[0] = (dict(acc), calls[0])

    gcalls = gemm_calls(batch)
    cases = [Case("instrumented", instrumented, setup=block_start), Case("train_step", step)] + [
        Case(label, fn) for label, fn in gcalls
    ]
    res = measure(cases, opts.repeats, opts.min_time / 2, opts.warmup, opts.pause)
    block_start()
    phases = {k: statistics.median(b[k] for b in blocks) for k in blocks[0]}
    gemms = {label: res[label]["median_s"] for label, _ in gcalls}
    return {
        "kind": "breakdown",
        "batch": batch,
        "threads": threads,
        "blocks": len(blocks),
        "phases_s": phases,
        "gemms_s": gemms,
        "train_step_s": res["train_step"]["median_s"],
        "background_cpu": res["train_step"]["background_cpu"],
    }
