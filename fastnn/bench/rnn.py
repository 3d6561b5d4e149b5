"""`fastnn bench --rnn`: LSTM and GRU side by side with PyTorch and with their GEMMs alone.

Workload (the recurrent target of the benchmark): input 32, hidden 128, T = 40 steps,
float32, batch_first, batch 64 and 256, one layer and two. A training step is the
forward over the sequence, the backward from a fixed gradient of the output sequence
(no input gradient: x is data) and an Adam update; inference is an eval-mode forward.
PyTorch runs the same in a worker process of its own (its thread pool would take the
cores from fastnn's). The "GEMM bound" is the same matrix products through the BLAS
fastnn uses, and nothing else: the layer with its kernels switched to their products
alone (per layer the input projection of all steps, one recurrent product per step,
and for training one per step back, the weight gradients and, above the first layer,
the input gradient), on the same threads and batch chunks.

Timing as in the rest of `fastnn bench`: interleaved repeats (the order rotates), the
median after a warm-up; only ratios from the same run are compared with the targets
(GRU >= 2x PyTorch's samples/s; LSTM step within 1.15x of its GEMM bound).
"""

import sys

import numpy as np

import fastnn
from fastnn.bench.harness import (
    Case,
    CpuMeter,
    RemoteCase,
    TorchWorker,
    measure,
    set_threads,
)
from fastnn.bench.report import _fmt_rate, _fmt_ratio, _table

INPUT, HIDDEN, STEPS = 32, 128, 40
BATCHES, LAYERS, KINDS = (64, 256), (1, 2), ("lstm", "gru")
GRU_VS_TORCH, LSTM_VS_BOUND = 2.0, 1.15
_BLOCKS = {"lstm": 4, "gru": 3}


def make_data(batch, seed=0):
    """x (batch, T, INPUT) and the output gradient (batch, T, HIDDEN), float32."""
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((batch, STEPS, INPUT), dtype=np.float32),
        rng.standard_normal((batch, STEPS, HIDDEN), dtype=np.float32),
    )


# --------------------------------------------------------------------------------------
# fastnn
# --------------------------------------------------------------------------------------
def fastnn_layer(kind, layers, seed=0):
    from fastnn.layers import GRU, LSTM

    fastnn.seed(seed)
    cls = LSTM if kind == "lstm" else GRU
    return cls(INPUT, HIDDEN, num_layers=layers, batch_first=True)


class FastnnRNN:
    """The fastnn side: `train_step`, `infer`, and the step's phases one at a time."""

    def __init__(self, kind, layers, batch):
        from fastnn.module import Context

        self.layer = fastnn_layer(kind, layers)
        self.x, self.g = make_data(batch)
        self.opt = fastnn.optim.Adam(self.layer.parameters(), lr=1e-3)
        self.ctx, self.eval_ctx = Context(), Context()

    def forward(self):
        self.layer._forward(self.ctx, self.x)

    def backward(self):
        self.layer._backward(self.ctx, self.g, False)

    def update(self):
        self.opt.step()
        self.opt.zero_grad()

    def train_step(self):
        self.forward()
        self.backward()
        self.update()

    def infer(self):
        self.layer.training = False
        self.layer._forward(self.eval_ctx, self.x)
        self.layer.training = True


class GemmBound(FastnnRNN):
    """The same layer whose kernels run only their matrix products: the same GEMM
    calls, on the same threads and batch chunks, with no gate arithmetic."""

    def __init__(self, kind, layers, batch):
        super().__init__(kind, layers, batch)
        self.forward()  # real values in every buffer the products then read
        self.backward()
        self.layer._gemm_only = True

    def train_step(self):
        self.forward()
        self.backward()


# --------------------------------------------------------------------------------------
# PyTorch, in its own process
# --------------------------------------------------------------------------------------
def torch_case(torch, kind, layers, batch, train):
    """A callable doing one torch training step (or inference) on the same shapes."""
    torch.manual_seed(0)
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    model = cls(INPUT, HIDDEN, num_layers=layers, batch_first=True)
    x, g = (torch.from_numpy(a) for a in make_data(batch))
    if not train:
        model.eval()

        def infer():
            with torch.no_grad():
                model(x)

        return infer
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        out, _ = model(x)
        out.backward(g)
        opt.step()
        opt.zero_grad()

    return step


def worker_main():
    """The PyTorch worker: fastnn.bench.torch_worker's protocol, with setup messages
    {"kind": "lstm"|"gru", "layers", "batch", "threads", "train": bool}."""
    import torch

    from fastnn.bench.torch_worker import serve

    serve(
        lambda: {"torch": torch.__version__},
        torch.set_num_threads,
        lambda msg: Case(
            "torch", torch_case(torch, msg["kind"], msg["layers"], msg["batch"], msg["train"])
        ),
    )


# --------------------------------------------------------------------------------------
# Sections and report
# --------------------------------------------------------------------------------------
def bench_rnn(worker, opts, threads=2, batches=BATCHES, layers=LAYERS, kinds=KINDS, log=print):
    """One row per (kind, layers, batch, mode): samples/s of fastnn, torch and the GEMM
    bound, measured side by side."""
    set_threads(threads)
    rows = []
    for kind in kinds:
        for n_layers in layers:
            for batch in batches:
                ours, bound = FastnnRNN(kind, n_layers, batch), GemmBound(kind, n_layers, batch)
                for mode, train in (("train", True), ("infer", False)):
                    cases = [
                        Case("fastnn", ours.train_step if train else ours.infer, batch),
                        Case("gemm_bound", bound.train_step if train else bound.infer, batch),
                    ]
                    if worker is not None:
                        cases.append(
                            RemoteCase(
                                worker,
                                "torch",
                                batch,
                                dict(
                                    cmd="setup",
                                    kind=kind,
                                    layers=n_layers,
                                    batch=batch,
                                    threads=threads,
                                    train=train,
                                ),
                            )
                        )
                    res = measure(cases, opts.repeats, opts.min_time, opts.warmup, opts.pause)
                    row = {
                        "kind": kind,
                        "layers": n_layers,
                        "batch": batch,
                        "mode": mode,
                        "threads": threads,
                        **{f"{k}_per_s": r["items_per_s"] for k, r in res.items()},
                        "background_cpu": res["fastnn"]["background_cpu"],
                    }
                    rows.append(row)
                    log(
                        f"  rnn {kind} L={n_layers} batch={batch} {mode}: "
                        + ", ".join(f"{k} {r['items_per_s']:,.0f}/s" for k, r in res.items())
                    )
    return rows


def profile_rnn(kind, layers, batch, opts, threads=2):
    """Median seconds of each phase of fastnn's step next to the same phase's GEMMs."""
    set_threads(threads)
    ours, bound = FastnnRNN(kind, layers, batch), GemmBound(kind, layers, batch)
    ours.forward()  # the backward phase needs a forward's context
    cases = [
        Case("forward", ours.forward),
        Case("backward", ours.backward),
        Case("adam", ours.update),
        Case("gemm forward", bound.forward),
        Case("gemm backward", bound.backward),
    ]
    res = measure(cases, opts.repeats, opts.min_time, opts.warmup, opts.pause)
    return {k: r["median_s"] for k, r in res.items()}


def rnn_table(rows, mode):
    headers = [
        "model",
        "layers",
        "batch",
        "fastnn",
        "PyTorch",
        "vs PyTorch",
        "GEMM bound",
        "time / bound",
        "target",
    ]
    body = []
    for r in (r for r in rows if r["mode"] == mode):
        torch_rate = r.get("torch_per_s")
        vs_torch = r["fastnn_per_s"] / torch_rate if torch_rate else None
        vs_bound = r["gemm_bound_per_s"] / r["fastnn_per_s"]
        if r["kind"] == "gru":
            target = (
                "-"
                if vs_torch is None
                else (
                    f">= {GRU_VS_TORCH:g}x PyTorch: "
                    + ("met" if vs_torch >= GRU_VS_TORCH else "NOT met")
                )
            )
        else:
            target = f"<= {LSTM_VS_BOUND:g}x bound: " + (
                "met" if vs_bound <= LSTM_VS_BOUND else "NOT met"
            )
        body.append(
            [
                r["kind"].upper(),
                r["layers"],
                r["batch"],
                _fmt_rate(r["fastnn_per_s"]),
                _fmt_rate(torch_rate),
                _fmt_ratio(vs_torch),
                _fmt_rate(r["gemm_bound_per_s"]),
                _fmt_ratio(vs_bound),
                target,
            ]
        )
    return _table(headers, body, ["l", "r", "r", "r", "r", "r", "r", "r", "l"])


def profile_table(prof, kind, layers, batch):
    ms = lambda s: f"{1e3 * s:.2f}"  # noqa: E731
    body = [
        [
            "forward",
            ms(prof["forward"]),
            ms(prof["gemm forward"]),
            _fmt_ratio(prof["forward"] / prof["gemm forward"]),
        ],
        [
            "backward",
            ms(prof["backward"]),
            ms(prof["gemm backward"]),
            _fmt_ratio(prof["backward"] / prof["gemm backward"]),
        ],
        ["Adam + zero_grad", ms(prof["adam"]), "-", "-"],
    ]
    head = f"Per-phase profile, {kind.upper()} {layers} layer(s), batch {batch} (ms per call):\n"
    return head + _table(
        ["phase", "fastnn", "its GEMMs alone", "ratio"], body, ["l", "r", "r", "r"]
    )


def run_rnn(opts, out=sys.stdout, threads=2, log=None, torch=True):
    """The RNN section of `fastnn bench`: tables on `out`; returns the rows. torch=False
    leaves PyTorch out."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    meter = CpuMeter()
    worker = TorchWorker.start("fastnn.bench.rnn:worker_main") if torch else None
    try:
        rows = bench_rnn(worker, opts, threads, log=log)
    finally:
        if worker is not None:
            worker.close()
    profiles = [(k, 1, 64, profile_rnn(k, 1, 64, opts, threads)) for k in KINDS]
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(
        f"\nRecurrent layers (input {INPUT}, hidden {HIDDEN}, T {STEPS}, float32, "
        f"batch_first), samples/s, {threads} thread{'s' if threads > 1 else ''}; "
        + (
            f"PyTorch {worker.info['torch']} in its own process:"
            if worker
            else "PyTorch not measured:"
        )
    )
    p("\nTraining step (forward, backward through time, Adam):")
    p(rnn_table(rows, "train"))
    p("\nInference (eval-mode forward):")
    p(rnn_table(rows, "infer"))
    for kind, layers, batch, prof in profiles:
        p("\n" + profile_table(prof, kind, layers, batch))
    bg = meter.background()
    if bg is not None:
        p(f"\nOther processes used {100 * bg:.0f}% of the machine's CPU during this section.")
    return rows


def run_from_args(args):
    """`fastnn bench --rnn`: the section with the command line's timing options, at the
    largest of --threads (default 2); returns an exit code."""
    from fastnn.bench.compare import timing_options

    opts = timing_options(args)
    if opts is None:
        return 2
    run_rnn(opts, threads=max(args.threads or [2]), torch=not args.no_torch)
    return 0


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m fastnn.bench.rnn", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    opts = argparse.Namespace(repeats=args.repeats, min_time=args.min_time, warmup=0.1, pause=0.15)
    run_rnn(opts, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
