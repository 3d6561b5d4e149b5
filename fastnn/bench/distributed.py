"""`fastnn bench --distributed`: data-parallel training on this machine and a cost model
for N machines.

Measured here (each configuration in its own `mpiexec` run, interleaved repeats, the
median counts):
- one training step of the MLP-BN reference model at a global batch, as 1 process x 2
  threads and as 2 processes x 1 thread (each rank half the batch, gradient all-reduced);
- the all-reduce of a float32 gradient of growing size between 2 processes: seconds per
  call and the bandwidth it reaches (over shared memory on one machine).

The cost model (`step_time`) predicts the step time on N machines from the compute rate
of one machine at the per-machine batch and a ring all-reduce of the gradient:
    t_step(N) = t_compute(G / N) + 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency
(no overlap of communication with the backward pass: an upper bound on the step time).
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# The reference models. MLP-BN: 784 -> 512 -> 512 -> 10 with BatchNorm1d (fastnn bench).
# CNN: 3x32x32 input, 3x3 convolutions 32-32-pool-64-64-pool-128-128-pool, Dense 2048 ->
# 256 -> 10 (a CIFAR-10 VGG-style network).
MLP_PARAMS = (784 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10) + 2 * 2 * 512
CNN_CONVS = [
    (3, 32, 32),
    (32, 32, 32),
    (32, 64, 16),
    (64, 64, 16),
    (64, 128, 8),
    (128, 128, 8),
]  # (in channels, out channels, output side)
CNN_PARAMS = sum(ci * co * 9 + co for ci, co, _ in CNN_CONVS) + (2048 * 256 + 256) + (256 * 10 + 10)
# Multiply-adds of forward + backward (input and weight gradients): 3 x forward.
MLP_FLOPS = 3 * 2 * (784 * 512 + 512 * 512 + 512 * 10)
CNN_FLOPS = 3 * 2 * (sum(ci * co * 9 * s * s for ci, co, s in CNN_CONVS) + 2048 * 256 + 256 * 10)
GBITS = (10, 25, 100)
LATENCY_S = 20e-6  # per message hop over TCP/Ethernet (an assumption, not measured)


def ring_allreduce_seconds(nbytes, n, gbit, latency=LATENCY_S):
    """Time of a ring all-reduce of nbytes over n machines on links of `gbit` Gbit/s:
    each machine sends and receives 2 (n - 1) / n of the buffer in 2 (n - 1) steps."""
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / (gbit * 1e9 / 8) + 2 * (n - 1) * latency


def step_time(n, global_batch, rate, nbytes, gbit):
    """Predicted seconds per step on n machines; rate(b) = samples/s of one machine
    training at batch b."""
    b = global_batch / n
    return b / rate(b) + ring_allreduce_seconds(nbytes, n, gbit)


def interpolated_rate(points):
    """samples/s at any batch from measured (batch, samples/s) pairs: linear in
    log(batch), constant beyond the measured range."""
    xs = np.log([b for b, _ in points])
    ys = [r for _, r in points]
    return lambda b: float(np.interp(math.log(b), xs, ys))


def scaling_table(name, global_batch, rate, nbytes, machines=(1, 2, 4, 8, 16, 32, 64, 128)):
    """Rows (N, per-machine batch, compute ms, then for each link speed: all-reduce ms,
    speed-up and efficiency) and, per link speed, the largest N at >= 50% efficiency."""
    t1 = step_time(1, global_batch, rate, nbytes, GBITS[0])
    rows, limits = [], {}
    for n in machines:
        if global_batch / n < 1:
            break
        b = global_batch / n
        row = [n, b, 1e3 * b / rate(b)]
        for gbit in GBITS:
            t = step_time(n, global_batch, rate, nbytes, gbit)
            speedup = t1 / t
            row += [1e3 * ring_allreduce_seconds(nbytes, n, gbit), speedup, speedup / n]
            if speedup / n >= 0.5:
                limits[gbit] = n
        rows.append(row)
    return {
        "model": name,
        "global_batch": global_batch,
        "bytes": nbytes,
        "rows": rows,
        "limits": limits,
    }


def format_scaling(table):
    head = ["N", "batch/N", "compute ms"]
    for g in GBITS:
        head += [f"AR ms {g}G", f"speed-up {g}G", f"eff. {g}G"]
    lines = [
        f"{table['model']}: global batch {table['global_batch']}, "
        f"{table['bytes'] / 1e6:.2f} MB all-reduced per step",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in table["rows"]:
        cells = [str(r[0]), f"{r[1]:g}", f"{r[2]:.2f}"]
        for k in range(len(GBITS)):
            ar, s, e = r[3 + 3 * k : 6 + 3 * k]
            cells += [f"{ar:.2f}", f"{s:.1f}", f"{100 * e:.0f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        "largest N at >= 50% efficiency: "
        + ", ".join(f"{g} Gbit/s: {table['limits'].get(g, 1)}" for g in GBITS)
    )
    return "\n".join(lines)


# fastnn's MLP-BN training rate on one machine (samples/s at batch 16, 128, 2048, 2
# threads) from the reference run in bench/results/reference.json; the CNN's rate is
# estimated from the same run's GEMM-only rate at batch 2048 (228 GFLOP/s of
# multiply-adds) at 60% efficiency for convolutions lowered to GEMMs.
REFERENCE_MLP_RATE = ((16, 20829), (128, 44726), (2048, 53590))
REFERENCE_GEMM_FLOPS = 56957 * MLP_FLOPS
CNN_EFFICIENCY = 0.6


def cost_model_text(mlp_rate=REFERENCE_MLP_RATE, gemm_flops=REFERENCE_GEMM_FLOPS):
    """The scaling tables of the docs: MLP-BN at global batch 2048 and 256, the CNN at
    global batch 256."""
    mlp = interpolated_rate(mlp_rate)
    cnn_rate = CNN_EFFICIENCY * gemm_flops / CNN_FLOPS
    tables = [
        scaling_table("MLP-BN", 2048, mlp, 4 * MLP_PARAMS),
        scaling_table("MLP-BN", 256, mlp, 4 * MLP_PARAMS),
        scaling_table("CNN", 256, lambda b: cnn_rate, 4 * CNN_PARAMS),
    ]
    return "\n\n".join(format_scaling(t) for t in tables)


# --------------------------------------------------------------------------------------
# Workers (run under mpiexec)
# --------------------------------------------------------------------------------------
def _median_seconds(fn, repeats, min_time, world):
    """Median over repeats of the time per call of fn; with a world, every rank makes
    rank 0's number of calls and the blocks start and end at barriers."""
    barrier = (lambda: None) if world is None else world.comm.Barrier
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    calls = max(1, int(min_time / one))
    if world is not None:
        calls = world.broadcast_object(calls)
    times = []
    for _ in range(repeats):
        barrier()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        barrier()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times)


def worker_allreduce(sizes, repeats, min_time):
    from fastnn import distributed

    world = distributed.init()
    out = []
    for n in sizes:
        buf = np.ones(n, np.float32)
        sec = _median_seconds(lambda: world.allreduce_(buf), repeats, min_time, world)
        out.append({"floats": n, "bytes": 4 * n, "seconds": sec})
    return out


def worker_step(global_batch, repeats, min_time):
    """Seconds per training step of MLP-BN (forward, loss, backward, gradient
    all-reduce, Adam) at the global batch, on this world: what one step of fit does."""
    import fastnn
    from fastnn import distributed
    from fastnn.bench.workloads import fastnn_mlp_bn, make_data

    world = distributed.world()
    fastnn.seed(0)
    X, y = make_data(n=global_batch)
    model = fastnn_mlp_bn()
    trainer = fastnn.Trainer(
        model, fastnn.losses.CrossEntropyLoss(), fastnn.optim.Adam(model.parameters(), lr=1e-3)
    )
    if world is not None:  # what fit sets up: the all-reduce hook, this rank's shard
        trainer._dp = distributed.DataParallel(world)
        trainer._dp.start(model, trainer._parameter_store())
        part = world.begin_batch(global_batch)
        X, y = np.ascontiguousarray(X[part]), y[part]
    model.train()
    return _median_seconds(lambda: trainer._step(X, y, ()), repeats, min_time, world)


def _worker_main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["allreduce", "step", "model"])
    p.add_argument("--sizes", default="")
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.2)
    a = p.parse_args(argv)
    if a.what == "model":
        print(cost_model_text())
        return
    if a.what == "allreduce":
        result = worker_allreduce([int(s) for s in a.sizes.split(",")], a.repeats, a.min_time)
    else:
        result = worker_step(a.batch, a.repeats, a.min_time)
    from fastnn import distributed

    if distributed.is_main_process():
        print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------
def _mpiexec():
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.path.exists(local) else "mpiexec"


def _launch(n, threads, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    cmd = ([_mpiexec(), "-n", str(n)] if n > 1 else []) + [
        sys.executable,
        "-m",
        "fastnn.bench.distributed",
        *args,
    ]
    # Run from the directory this process imported fastnn from: `python -m` puts the
    # working directory first on sys.path, and from a source tree whose extension is not
    # built (fastnn installed elsewhere) it would import that tree.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=1800, cwd=os.path.dirname(here)
    )
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run(batch=2048, repeats=5, min_time=0.2, out=None):
    """Measure and print (to `out`, default stdout); returns the results as a dict."""
    out = sys.stdout if out is None else out
    common = ["--repeats", str(repeats), "--min-time", str(min_time)]
    steps = {}
    for _ in range(2):  # interleave the two configurations twice
        for procs, threads in ((1, 2), (2, 1)):
            steps.setdefault((procs, threads), []).append(
                _launch(procs, threads, ["step", "--batch", str(batch), *common])
            )
    sizes = [2**k for k in range(10, 25, 2)] + [MLP_PARAMS, CNN_PARAMS]
    allreduce = _launch(2, 1, ["allreduce", "--sizes", ",".join(map(str, sorted(sizes))), *common])
    step_rows = {
        f"{p} process{'es' if p > 1 else ''} x {t} thread{'s' if t > 1 else ''}": min(v)
        for (p, t), v in steps.items()
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"MLP-BN training step, global batch {batch} ({os.cpu_count()} CPUs, load "
        f"average {load:.1f} during the run):",
        file=out,
    )
    base = step_rows["1 process x 2 threads"]
    for name, sec in step_rows.items():
        print(f"  {name:>24}: {1e3 * sec:8.2f} ms/step  ({base / sec:.2f}x)", file=out)
    print("All-reduce of a float32 gradient between 2 processes (shared memory):", file=out)
    print("| floats | MB | ms | GB/s (algorithm bandwidth) |\n|---|---|---|---|", file=out)
    for r in allreduce:
        print(
            f"| {r['floats']:,} | {r['bytes'] / 1e6:.2f} | {1e3 * r['seconds']:.3f} | "
            f"{r['bytes'] / r['seconds'] / 1e9:.2f} |",
            file=out,
        )
    return {"steps": step_rows, "allreduce": allreduce, "load_average": load}


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
