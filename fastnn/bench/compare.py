"""`fastnn bench`: fastnn side by side with its anchors on the MLP-BN workload.

Everything docs/performance.md asks of a measurement is done here: all implementations run
in one benchmark run on the same preloaded data (N = 16,384 x 784 float32), at the same
batch size and thread count, in interleaved repeats (the order rotates from repeat to
repeat), each repeat long enough to be stable (~0.2 s of calls), and the median of the
repeats after a warm-up is what counts. Only ratios measured in the same run are
compared with the targets; absolute figures move from run to run on a shared machine.
PyTorch runs in a worker process of its own (fastnn.bench.torch_worker), its timings
interleaved with the others: in the same process its thread pool takes cores from
fastnn's and NumPy's threads (on 2 cores it halved both at batch 128).

Measured:
- training step of MLP-BN (forward, loss, backward, Adam) for fastnn, the NumPy
  baseline (fastnn.bench.numpy_baseline) and, when `import torch` works, PyTorch with
  its default Adam and with `fused=True`; plus the "GEMM-only bound": the step's 8
  GEMMs alone, at the same shapes, through the BLAS fastnn uses (fastnn._kernels.gemm);
- inference (eval-mode predict) at batch 1, 16, 256;
- kernels on large arrays against the streaming bandwidth of the same run (targets 4
  and 5), thread-team overhead on a small array, steady-state allocations of a step;
- a per-phase breakdown of fastnn's step (layers, loss, optimizer, GEMMs in isolation).

The tables go to stdout, and every measurement with the machine description to JSON
(bench/results/<timestamp>.json by default).
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

from fastnn.bench.harness import CpuMeter, TorchWorker, machine_info, set_threads
from fastnn.bench.report import breakdown_table, evaluate_targets, write_report
from fastnn.bench.sections import (
    bench_breakdown,
    bench_kernels,
    bench_memory,
    bench_predict,
    bench_scaling,
    bench_train,
)
from fastnn.bench.workloads import PREDICT_BATCHES, SCALING_SIZES, THREADS, TRAIN_BATCHES, make_data


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_arguments(parser):
    """The options of `fastnn bench` (shared by the CLI and bench/compare.py)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds in total: a smoke test (CI), not a measurement",
    )
    parser.add_argument(
        "--batches",
        type=_int_list,
        default=None,
        metavar="16,128,2048",
        help="training batch sizes (default 16,128,2048; --quick: 128)",
    )
    parser.add_argument(
        "--threads",
        type=_int_list,
        default=None,
        metavar="1,2",
        help="thread counts (default 1,2; --quick: 1)",
    )
    parser.add_argument(
        "--no-torch", action="store_true", help="leave PyTorch out even if it is installed"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved repeats per measurement (default 7; --quick: 3)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds per repeat of one case (default 0.2; --quick: 0.02)",
    )
    parser.add_argument("--no-predict", action="store_true", help="skip the inference section")
    parser.add_argument(
        "--no-kernels", action="store_true", help="skip the kernel-bandwidth section"
    )
    parser.add_argument(
        "--no-scaling",
        action="store_true",
        help="skip the epoch-scaling section (one epoch on up to 1M x 784 "
        "float32 samples, 3.3 GB; --quick skips it)",
    )
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the per-phase breakdown of fastnn's step"
    )
    parser.add_argument(
        "--cnn",
        action="store_true",
        help="the convolutional section: LeNet-5 and a small ResNet training "
        "steps against PyTorch, convolution time against its GEMMs, "
        "peak memory (fastnn.bench.cnn)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only the per-phase breakdown of fastnn's step (each layer's "
        "forward and backward, loss, optimizer, the GEMMs alone), for "
        "each batch size and thread count",
    )
    parser.add_argument(
        "--rnn",
        action="store_true",
        help="run only the recurrent section (fastnn.bench.rnn): LSTM and GRU "
        "against PyTorch and their GEMMs, at the largest --threads",
    )
    parser.add_argument(
        "--contention",
        action="store_true",
        help="only the busy-machine measurement: each implementation's "
        "training step with and without a competing busy process "
        "(fastnn.bench.contention)",
    )
    parser.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="where to write the results (default bench/results/<timestamp>.json)",
    )
    parser.add_argument("--no-json", action="store_true", help="write no JSON file")
    return parser


def timing_options(args):
    """Repeats, time per repeat, warm-up and pause of a run (and the kernel sizes) from
    the command line; None (with a message) when they are out of range."""
    quick = args.quick
    opts = argparse.Namespace(
        repeats=(3 if quick else 7) if args.repeats is None else args.repeats,
        min_time=(0.02 if quick else 0.2) if args.min_time is None else args.min_time,
        warmup=0.02 if quick else 0.1,
        pause=0.02 if quick else 0.15,
        kernel_shape=(1024, 1024) if quick else (8192, 1024),
        adam_params=1_000_000 if quick else 10_000_000,
    )
    if opts.repeats < 1 or opts.min_time <= 0:
        print("fastnn bench: --repeats must be >= 1 and --min-time > 0", file=sys.stderr)
        return None
    return opts


def run(args, out=sys.stdout):
    """Run the benchmark described by parsed `args`; returns an exit code."""
    t_start = time.perf_counter()
    run_meter = CpuMeter()
    quick = args.quick
    opts = timing_options(args)
    if opts is None:
        return 2
    batches = args.batches or ([128] if quick else list(TRAIN_BATCHES))
    # --quick runs on one thread: on a shared machine a 2-thread OpenMP/BLAS step can
    # take 10x longer whenever another process holds a core, and a smoke test must
    # finish in seconds whatever the load.
    threads = args.threads or ([1] if quick else list(THREADS))
    predict_batches = [1, 256] if quick else list(PREDICT_BATCHES)
    judge_t = 2 if 2 in threads else max(threads)
    # PyTorch (optional) in a process of its own; None where it cannot be imported
    worker = None if args.no_torch else TorchWorker.start()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        return _run(
            args,
            out,
            opts,
            quick,
            batches,
            threads,
            predict_batches,
            judge_t,
            worker,
            log,
            t_start,
            run_meter,
        )
    finally:
        if worker is not None:
            worker.close()


def _run(
    args,
    out,
    opts,
    quick,
    batches,
    threads,
    predict_batches,
    judge_t,
    worker,
    log,
    t_start,
    run_meter,
):
    info = machine_info(worker)
    X, y = make_data()
    log(
        f"fastnn bench: data {X.shape} float32, batches {batches}, threads {threads}, "
        f"{opts.repeats} repeats x {opts.min_time:g} s" + (" (quick)" if quick else "")
    )
    if args.cnn:
        from . import cnn

        return cnn.run(args, opts, worker, out, log)
    if args.profile:
        for t in threads:
            for b in batches:
                print("\n" + breakdown_table(bench_breakdown(X, y, b, t, opts)), file=out)
        return 0

    rows = bench_train(X, y, batches, threads, worker, opts, log)
    if not args.no_predict:
        rows += bench_predict(X, predict_batches, threads, worker, opts, log)
    stream = None
    if not args.no_kernels:
        krows, stream = bench_kernels(judge_t, opts, log)
        rows += krows
    memory = bench_memory(X, y, max(batches), judge_t)
    scaling = (
        []
        if (quick or args.no_scaling)
        else bench_scaling(SCALING_SIZES, max(TRAIN_BATCHES), judge_t, log)
    )
    breakdowns = []
    if not (quick or args.no_breakdown):
        for b in batches:
            breakdowns.append(bench_breakdown(X, y, b, judge_t, opts))
    set_threads(judge_t)
    targets = evaluate_targets(rows, batches, judge_t, stream, memory, scaling)
    duration = time.perf_counter() - t_start
    background = run_meter.background()

    result = {
        "machine": info,
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": sys.argv,
        "config": {
            "quick": quick,
            "batches": batches,
            "threads": threads,
            "repeats": opts.repeats,
            "min_time_s": opts.min_time,
            "pause_s": opts.pause,
            "predict_batches": predict_batches,
            "n_samples": int(X.shape[0]),
        },
        "measurements": rows,
        "memory": memory,
        "scaling": scaling,
        "breakdowns": breakdowns,
        "stream_bytes_per_s": stream,
        "targets": targets,
        "duration_s": duration,
        "background_cpu": background,
    }
    write_report(result, judge_t, not args.no_predict, out)
    if not args.no_json:
        path = (
            Path(args.json)
            if args.json
            else Path("bench")
            / "results"
            / (datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, default=_json_default))
        print(f"Results written to {path}", file=out)
    return 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main(argv=None):
    parser = add_arguments(
        argparse.ArgumentParser(prog="fastnn bench", description=__doc__.split("\n\n")[0])
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
