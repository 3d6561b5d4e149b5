"""`fastnn bench --inference`: evaluation of the MLP-BN model in fastnn, PyTorch and
onnxruntime, each in a process of its own.

The model (784 -> [Dense 512, BatchNorm1d, ReLU, Dropout 0.5] x 2 -> Dense 10,
float32) is built by fastnn with non-trivial running statistics; PyTorch loads the same
state_dict (eval mode, under `torch.inference_mode()`), and onnxruntime runs an ONNX
export of the same weights (`fastnn.onnx.export` when that module exists, else
`torch.onnx.export` in the PyTorch process).

Measured, interleaved in rounds whose order rotates (so drift on a shared machine hits
every library alike):
- latency at batch 1: every call timed on its own; median and 99th percentile;
- throughput at batch 16, 256 and 4096: samples/s from the median per-call time of
  the rounds;
- fastnn's eval GEMMs alone (the three products at the same shapes, through the same
  BLAS), the bound its compiled predictor is compared with;
- what the machine allows, measured on the same threads before the workers start:
  the CPU's peak arithmetic rate (fused multiply-adds on its widest vectors), of which
  each library's rate at batch 256 and 4096 is quoted as a share, the most fastnn could
  reach against PyTorch (peak / PyTorch's rate) printed beside the throughput targets;
  and how often the machine interrupts a running thread, which sets the lowest 99th
  percentile any call as long as fastnn's batch-1 median can have (harness.p99_floor),
  printed beside the tail target.

A second model, the LeNet-5 of fastnn/bench/cnn.py (1x28x28 images: the same data
reshaped), is timed the same way in the rows "LeNet-5: ...": fastnn's predict (a
compiled GraphPredictor) and uncompiled forward, PyTorch, and onnxruntime on an ONNX
export of the same weights.

fastnn is measured through `model.predict(x, batch_size=len(x))` (the compiled path),
through a compiled predictor called directly (`fastnn.inference.compile(model)(x)`)
and uncompiled (the evaluation forward of the model's own plan, layer by layer with
the Dense + activation epilogues fused: the path before compilation, for reference).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from fastnn.bench.harness import interruptions, p99_floor, peak_gflops
from fastnn.bench.workloads import N_FEATURES, _batches, fastnn_mlp_bn, make_data

BATCHES = (1, 16, 256, 4096)
# Targets of this section (ratios "higher is better" unless noted).
LATENCY_VS_TORCH = 3.0  # PyTorch's batch-1 median / fastnn's
LATENCY_VS_ORT = 1 / 1.2  # onnxruntime's batch-1 median / fastnn's
P99_OVER_MEDIAN = 2.0  # fastnn's p99 / median at batch 1, at most
THROUGHPUT_VS_TORCH = 1.5  # at batch 256 and 4096
THROUGHPUT_VS_ORT = 1.0
EVAL_OVER_GEMM = 1.15  # compiled predictor time / its GEMMs alone, at most


LENET = "LeNet-5: "  # the prefix of the CNN's cases
IMAGE = (1, 28, 28)  # its input: the reference data's 784 features as an image


# --------------------------------------------------------------------------------------
# The workers (one process per library)
# --------------------------------------------------------------------------------------
def _data():
    return make_data()[0]


def _lenet_path(path):
    """Where the LeNet-5's weights (or ONNX file) are kept next to the MLP's."""
    root, ext = os.path.splitext(path)
    return f"{root}_lenet5{ext}"


def _images(x):
    return x.reshape((x.shape[0],) + IMAGE)


def build_lenet(seed=0):
    """The LeNet-5 of fastnn/bench/cnn.py in evaluation mode."""
    import fastnn
    from fastnn.bench.cnn import fastnn_lenet5

    fastnn.seed(seed)
    return fastnn_lenet5().eval()


def build_model(seed=0):
    """The MLP-BN model with running statistics from a few training-mode forwards."""
    import fastnn

    fastnn.seed(seed)
    model = fastnn_mlp_bn()
    X = _data()
    model.train()
    for i in range(4):
        model.forward(X[i * 256 : (i + 1) * 256] * (1 + 0.1 * i))
    return model.eval()


def flops_per_row(model):
    """Floating-point operations of one row through the model's Dense layers (2 per
    multiply-add; the biases, batch norm and activations are folded or negligible)."""
    return sum(
        2 * w.size for k, w in model.state_dict().items() if k.endswith("weight") and w.ndim == 2
    )


def _fastnn_cases(weights_path):
    import fastnn
    from fastnn import _kernels, inference
    from fastnn.context import Context

    model = build_model_from(weights_path)
    predictor = inference.compile(model)
    ws = [m.weight.data for m in model.layers if isinstance(m, fastnn.Dense)]

    def predict(x):
        return model.predict(x, batch_size=len(x))

    ctx = Context()

    def uncompiled(x):  # the evaluation forward of the model's own plan
        return model._forward(ctx, x)

    lenet = build_lenet()
    lenet.load_state_dict(dict(np.load(_lenet_path(weights_path))))
    lenet_ctx = Context()

    outs = {}

    def gemms(x):  # the products of the compiled chain, at the same shapes
        n = x.shape[0]
        for w in ws:
            out = outs.get((n, w.shape[0]))
            if out is None:
                out = outs[(n, w.shape[0])] = np.empty((n, w.shape[0]), np.float32)
            _kernels.gemm(x, w, out, False, True, 1.0, 0.0)
            x = out
        return x

    return {
        "fastnn predict": predict,
        "fastnn compiled": predictor,
        "fastnn uncompiled": uncompiled,
        "fastnn GEMMs alone": gemms,
        LENET + "fastnn predict": lambda x: lenet.predict(_images(x), batch_size=len(x)),
        LENET + "fastnn uncompiled": lambda x: lenet._forward(lenet_ctx, _images(x)),
    }


def _torch_cases(weights_path, threads):
    import torch

    from fastnn.bench.workloads import torch_mlp_bn

    torch.set_num_threads(threads)
    model = torch_mlp_bn(torch).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(weights_path).items()})

    from fastnn.bench.cnn import torch_lenet5

    lenet = torch_lenet5(torch).eval()
    lenet.load_state_dict(
        {k: torch.from_numpy(v) for k, v in np.load(_lenet_path(weights_path)).items()}
    )

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x))

    def run_lenet(x):
        with torch.inference_mode():
            return lenet(torch.from_numpy(_images(x)))

    return {"PyTorch": run, LENET + "PyTorch": run_lenet}, {"mlp": model, "lenet5": lenet}


def _ort_cases(onnx_path, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    cases = {"onnxruntime": lambda x: sess.run(None, {name: x})}
    if os.path.exists(_lenet_path(onnx_path)):
        lenet = ort.InferenceSession(
            _lenet_path(onnx_path), opts, providers=["CPUExecutionProvider"]
        )
        lname = lenet.get_inputs()[0].name
        cases[LENET + "onnxruntime"] = lambda x: lenet.run(None, {lname: _images(x)})
    return cases


def _time_calls(fn, X, batch, seconds, per_call):
    """Calls of fn on successive batches until `seconds` have passed (at least one):
    (calls, the list of per-call seconds) when per_call, else (calls, total seconds).
    Bounded by time, not by a count calibrated beforehand: on a loaded machine a call
    can take 100x longer than during calibration."""
    starts = _batches(X.shape[0], batch)
    xs = [np.ascontiguousarray(X[s : s + batch]) for s, _ in zip(starts, range(64))]
    fn(xs[0])  # settle caches after whatever ran before
    clock = time.perf_counter
    times, n, t0 = [], 0, clock()
    end = t0 + seconds
    while True:
        x = xs[n % len(xs)]
        t = clock()
        fn(x)
        done = clock()
        n += 1
        if per_call:
            times.append(done - t)
        if done >= end:
            return n, times if per_call else done - t0


def worker_main(kind, path, threads):
    """Serve one library's cases: one JSON command per line on stdin, one JSON answer per
    line on stdout. Commands: info; cases; export_onnx (PyTorch: write "model", "mlp"
    or "lenet5", as ONNX to "path"); time (case, batch, seconds, per_call); quit."""
    import fastnn

    fastnn.set_num_threads(threads)
    X = _data()
    extra = None
    if kind == "fastnn":
        cases, info = _fastnn_cases(path), {"fastnn": fastnn.__version__}
    elif kind == "torch":
        import torch

        cases, extra = _torch_cases(path, threads)
        info = {"torch": torch.__version__}
    else:
        import onnxruntime

        cases, info = _ort_cases(path, threads), {"onnxruntime": onnxruntime.__version__}
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.get("cmd")
        try:
            if cmd == "quit":
                break
            if cmd == "info":
                out = info
            elif cmd == "cases":
                out = {"cases": list(cases)}
            elif cmd == "export_onnx":
                model = msg.get("model", "mlp")
                _torch_onnx_export(extra[model], msg["path"], model == "lenet5")
                out = {"ok": True}
            elif cmd == "time":
                n, result = _time_calls(
                    cases[msg["case"]], X, msg["batch"], msg["seconds"], msg["per_call"]
                )
                out = {"calls": n, "result": result}
                if kind == "fastnn":  # fewer when the governor saw other processes' load
                    out["threads"] = fastnn.threads.threads_in_use()
            else:
                out = {"error": f"unknown command {cmd!r}"}
        except Exception as e:  # noqa: BLE001 - reported to the orchestrator, which stops
            out = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def _torch_onnx_export(model, path, images=False):
    import warnings

    import torch

    x = torch.zeros((1,) + IMAGE if images else (1, N_FEATURES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            x,
            path,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            dynamo=False,
        )


class Worker:
    """A worker process (this module with --worker) answering one command at a time."""

    def __init__(self, kind, path, threads):
        self.kind = kind
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by close()
        # The worker imports this process's fastnn: its sys.path, not the working
        # directory first (from a source tree that would be an unbuilt fastnn).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
        code = (
            "import sys; del sys.path[0]; from fastnn.bench.inference import worker_main; "
            f"worker_main({kind!r}, {path!r}, {int(threads)})"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
        )
        self.info = self.ask(cmd="info")
        self.cases = self.ask(cmd="cases")["cases"]

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            self.stderr.seek(0)
            raise RuntimeError(
                f"the {self.kind} worker stopped: {self.stderr.read().strip()[-2000:]}"
            )
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the {self.kind} worker: {reply['error']}")
        return reply

    def close(self):
        try:
            self.ask(cmd="quit")
        except (OSError, RuntimeError, ValueError):
            pass
        self.proc.wait(timeout=30)
        self.stderr.close()


def _start(kind, path, threads, log):
    try:
        return Worker(kind, path, threads)
    except (OSError, RuntimeError, ValueError) as e:
        log(f"fastnn bench: no {kind} ({str(e).splitlines()[-1] if str(e) else e})")
        return None


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------
def measure_batch(cases, batch, rounds, min_time, pause):
    """cases: [(worker, case)]. After a warm-up, each round runs every case for
    ~min_time seconds, the order rotating from round to round. Returns {case:
    {"median_s", "p99_s" (batch 1: over every call), "samples_per_s", "calls",
    "fewest_threads" (fastnn's cases: the fewest threads in use at the end of a round)}}."""
    per_call = batch == 1
    for w, c in cases:
        w.ask(cmd="time", case=c, batch=batch, seconds=min_time / 4, per_call=False)
    samples, calls = {c: [] for _, c in cases}, {c: 0 for _, c in cases}
    threads = {}
    for r in range(rounds):
        k = r % len(cases)
        for w, c in cases[k:] + cases[:k]:
            time.sleep(pause)  # let the thread pools of the case before park
            res = w.ask(cmd="time", case=c, batch=batch, seconds=min_time, per_call=per_call)
            calls[c] += res["calls"]
            if "threads" in res:
                threads[c] = min(threads.get(c, res["threads"]), res["threads"])
            if per_call:
                samples[c].extend(res["result"])
            else:
                samples[c].append(res["result"] / res["calls"])
    out = {}
    for c, s in samples.items():
        med = statistics.median(s)
        out[c] = {"median_s": med, "samples_per_s": batch / med, "calls": calls[c]}
        if c in threads:
            out[c]["fewest_threads"] = threads[c]
        if per_call:
            out[c]["p99_s"] = float(np.percentile(s, 99))
    return out


def _onnx_file(path, model, input_shape, torch_worker, log):
    """An ONNX file at `path` of `model` ("mlp" or "lenet5", with the weights of the
    run): fastnn's own export (fastnn.onnx) when it is there, else PyTorch's of the
    same weights. Returns the exporter's name, or None when there is none."""
    try:
        from fastnn import onnx as fastnn_onnx

        fastnn_onnx.export(model, path, input_shape=input_shape)
        return "fastnn.onnx.export"
    except ImportError:  # no fastnn.onnx, or no onnx package behind it
        pass
    if torch_worker is None:
        log("fastnn bench: no ONNX exporter (neither fastnn.onnx nor PyTorch)")
        return None
    kind = "lenet5" if len(input_shape) > 2 else "mlp"
    torch_worker.ask(cmd="export_onnx", path=path, model=kind)
    return "torch.onnx.export (same weights)"


def build_model_from(weights_path):
    model = build_model()
    model.load_state_dict(dict(np.load(weights_path)))
    return model


def run(args, out=sys.stdout):
    """The inference section (options of `fastnn bench`: --quick, --threads, --repeats,
    --min-time, --no-torch, --json); returns an exit code."""
    quick = args.quick
    threads = max(args.threads) if args.threads else (1 if quick else 2)
    rounds = (3 if quick else 7) if args.repeats is None else args.repeats
    min_time = (0.02 if quick else 0.2) if args.min_time is None else args.min_time
    batches = (1, 256) if quick else BATCHES
    pause = 0.02 if quick else 0.15

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    # The yardsticks first, while no worker process is running.
    peak = peak_gflops(threads, seconds=0.02 if quick else 0.1, repeats=1 if quick else 3)
    interrupts = interruptions(threads, 0.1 if quick else 0.5)
    flops = flops_per_row(build_model())
    workers = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "mlp_bn.npz")
        np.savez(weights, **build_model().state_dict())
        np.savez(_lenet_path(weights), **build_lenet().state_dict())
        try:
            fw = Worker("fastnn", weights, threads)
            workers.append(fw)
            tw = None if args.no_torch else _start("torch", weights, threads, log)
            workers += [tw] if tw else []
            onnx_path = os.path.join(tmp, "mlp_bn.onnx")
            exporter = _onnx_file(onnx_path, build_model_from(weights), (None, N_FEATURES), tw, log)
            lenet = build_lenet()
            lenet.load_state_dict(dict(np.load(_lenet_path(weights))))
            lenet_exporter = exporter and _onnx_file(
                _lenet_path(onnx_path), lenet, (None,) + IMAGE, tw, log
            )
            onnx_path = onnx_path if exporter else None
            ow = _start("ort", onnx_path, threads, log) if onnx_path else None
            workers += [ow] if ow else []
            cases = [(w, c) for w in workers for c in w.cases]
            log(
                f"fastnn bench --inference: {len(cases)} cases, batches {list(batches)}, "
                f"{threads} threads, {rounds} rounds x {min_time:g} s"
            )
            results = {}
            for b in batches:
                results[b] = measure_batch(cases, b, rounds, min_time, pause)
                log(f"  batch {b} done")
            info = {k: v for w in workers for k, v in w.info.items()}
        finally:
            for w in workers:
                w.close()
    machine = {"peak_gflops": peak, "flops_per_row": flops, "interruptions": interrupts}
    text = report(results, threads, info, (exporter, lenet_exporter), rounds, min_time, machine)
    print(text, file=out)
    print(f"\nTotal time {time.perf_counter() - t_start:.1f} s", file=out)
    if getattr(args, "json", None) and not getattr(args, "no_json", False):
        with open(args.json, "w") as f:
            json.dump(
                {
                    "threads": threads,
                    "info": info,
                    "onnx_exporter": exporter,
                    "peak_gflops": peak,
                    "flops_per_row": flops,
                    "interruptions_per_s": interrupts["per_second"],
                    "results": {str(b): r for b, r in results.items()},
                    "targets": targets(results, machine),
                },
                f,
                indent=1,
            )
    return 0


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def _get(results, batch, case, key="median_s"):
    return results.get(batch, {}).get(case, {}).get(key)


def _gflops(results, batch, case, flops):
    rate = _get(results, batch, case, "samples_per_s")
    return rate * flops * 1e-9 if rate and flops else None


def targets(results, machine=None):
    """[{target, value, threshold, higher_is_better, met, limit}] for what this run
    covers. `limit` is what this machine allows, where `machine` ({peak_gflops,
    flops_per_row, interruptions}, see run()) tells: for throughput against PyTorch,
    the most any library could reach (the CPU's peak / PyTorch's GFLOP/s); for the
    batch-1 tail, what the machine's interruptions alone are expected to give a call
    as long as fastnn's median (harness.p99_floor over that median)."""
    machine = machine or {}
    peak, flops = machine.get("peak_gflops"), machine.get("flops_per_row")
    interrupts = machine.get("interruptions")
    res = []

    def check(name, num, den, threshold, higher=True, limit=None):
        if num is None or den is None:
            return
        v = num / den
        res.append(
            {
                "target": name,
                "value": v,
                "threshold": threshold,
                "higher_is_better": higher,
                "met": bool(v >= threshold if higher else v <= threshold),
                "limit": limit,
            }
        )

    f = "fastnn predict"
    check(
        "batch 1 latency: PyTorch / fastnn (median)",
        _get(results, 1, "PyTorch"),
        _get(results, 1, f),
        LATENCY_VS_TORCH,
    )
    check(
        "batch 1 latency: onnxruntime / fastnn (median)",
        _get(results, 1, "onnxruntime"),
        _get(results, 1, f),
        LATENCY_VS_ORT,
    )
    median = _get(results, 1, f)
    check(
        "batch 1 latency: fastnn p99 / median",
        _get(results, 1, f, "p99_s"),
        median,
        P99_OVER_MEDIAN,
        higher=False,
        limit=p99_floor(interrupts, median) / median if interrupts and median else None,
    )
    for b in (256, 4096):
        torch_gflops = _gflops(results, b, "PyTorch", flops)
        check(
            f"batch {b} throughput: fastnn / PyTorch",
            _get(results, b, "PyTorch"),
            _get(results, b, f),
            THROUGHPUT_VS_TORCH,
            limit=peak / torch_gflops if peak and torch_gflops else None,
        )
        check(
            f"batch {b} throughput: fastnn / onnxruntime",
            _get(results, b, "onnxruntime"),
            _get(results, b, f),
            THROUGHPUT_VS_ORT,
        )
    for b in sorted(results):
        if b >= 256:
            check(
                f"batch {b}: compiled predictor / its GEMMs alone",
                _get(results, b, "fastnn compiled"),
                _get(results, b, "fastnn GEMMs alone"),
                EVAL_OVER_GEMM,
                higher=False,
            )
    return res


def report(results, threads, info, exporters, rounds, min_time, machine=None):
    """The table and the targets; exporters: the names of the exporters of the ONNX
    files of the MLP and the LeNet-5 (None where there was none), or None; machine:
    what the machine allows (see targets())."""
    exporter, lenet_exporter = exporters or (None, None)
    machine = machine or {}
    peak, flops = machine.get("peak_gflops"), machine.get("flops_per_row")
    interrupts = machine.get("interruptions")
    cases = []
    for b in results:
        cases += [c for c in results[b] if c not in cases]
    cases.sort(key=lambda c: c.startswith(LENET))  # the MLP's rows, then the CNN's
    lines = [
        (
            f"Inference, MLP-BN (784 -> 512 -> 512 -> 10, BatchNorm + ReLU + Dropout), "
            f"float32, {threads} thread{'s' if threads > 1 else ''}; each library in its "
            f"own process, {rounds} interleaved rounds of ~{min_time:g} s per case."
        ),
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in info.items())
        + (f"; ONNX model from {exporter}" if exporter else ""),
        "LeNet-5 rows: the LeNet-5 of fastnn/bench/cnn.py (conv 5x5, ReLU, max pool, twice; "
        "Dense 256 -> 120 -> 84 -> 10) on the same data as 1x28x28 images"
        + (f"; ONNX model from {lenet_exporter}." if lenet_exporter else "."),
    ]
    head = ["case", "batch 1 median us", "p99 us"] + [
        f"batch {b} samples/s" for b in sorted(results) if b > 1
    ]
    rows = []
    for c in cases:
        row = [c]
        med, p99 = _get(results, 1, c), _get(results, 1, c, "p99_s")
        row += [f"{med * 1e6:.1f}" if med else "-", f"{p99 * 1e6:.1f}" if p99 else "-"]
        for b in sorted(results):
            if b > 1:
                v = _get(results, b, c, "samples_per_s")
                row.append(f"{v:,.0f}" if v else "-")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def fmt(r):
        return "  ".join(
            str(v).ljust(w) if i == 0 else str(v).rjust(w)
            for i, (v, w) in enumerate(zip(r, widths))
        )

    lines += ["", fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    fewer = [
        f"{c} at batch {b}: {r['fewest_threads']}"
        for b in sorted(results)
        for c, r in results[b].items()
        if r.get("fewest_threads", threads) < threads
    ]
    if fewer:
        lines.append(
            "\nNOTE: fastnn's thread governor saw other processes keep cores busy and ran "
            "some rounds on fewer threads (fewest): " + "; ".join(fewer)
        )
    if peak and flops:
        lines.append(
            f"\nArithmetic rate (the MLP: {flops / 1e6:.2f} MFLOP per row; this CPU's peak "
            f"on {threads} thread{'s' if threads > 1 else ''}: {peak:.0f} GFLOP/s, "
            "float32 fused multiply-adds on its widest vectors):"
        )
        for b in (b for b in sorted(results) if b >= 256):
            rates = [
                f"{c} {g:.0f} GFLOP/s ({g / peak:.0%})"
                for c in ("fastnn predict", "PyTorch", "onnxruntime")
                if (g := _gflops(results, b, c, flops))
            ]
            lines.append(f"  batch {b}: " + ", ".join(rates))
    median = _get(results, 1, "fastnn predict")
    if interrupts and median:
        floor = p99_floor(interrupts, median)
        lines.append(
            f"\nInterruptions: this machine took a running thread's CPU away "
            f"{interrupts['per_second'] / threads:.0f} times/s per thread, for a median "
            f"{np.median(interrupts['gaps_us']) if len(interrupts['gaps_us']) else 0:.0f} us; "
            f"a call of {median * 1e6:.1f} us on {threads} thread{'s' if threads > 1 else ''} "
            f"is hit {median * interrupts['per_second']:.1%} of the time: expect a 99th "
            f"percentile near {floor * 1e6:.1f} us ({floor / median:.2f}x the median) from "
            "the interruptions alone, whatever the call runs."
        )
    lines.append("\nTargets (fastnn = model.predict):")
    for t in targets(results, machine):
        op = ">=" if t["higher_is_better"] else "<="
        limit = ""
        if t.get("limit") and t["higher_is_better"]:
            limit = f"; at most {t['limit']:.2f}x on this CPU"
        elif t.get("limit"):
            limit = f"; ~{t['limit']:.2f}x from this machine's interruptions alone"
        lines.append(
            f"  [{'met' if t['met'] else 'NOT MET':>7}] {t['target']}: "
            f"{t['value']:.2f}x ({op} {t['threshold']:.3g}x{limit})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    from fastnn.bench.compare import add_arguments

    parser = add_arguments(argparse.ArgumentParser(prog="fastnn bench --inference"))
    raise SystemExit(run(parser.parse_args()))
