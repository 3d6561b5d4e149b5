"""`fastnn bench --contention`: how much of its speed a training step keeps when another
busy process shares the cores.

On a machine shared with other work, OpenMP threads that spin while waiting at the end
of a parallel region burn the core a preempted team-mate needs, and a step can slow
down tenfold. fastnn chooses its OpenMP wait policy and spin time at import
(fastnn.threads); this measures the result. Each implementation runs in a worker
process of its own (the fastnn worker with fastnn's chosen settings, a fastnn worker
with libgomp's stock settings for comparison, PyTorch when importable), all at the same
thread count, batch sizes and data as the main benchmark. Repeats alternate between an
idle machine and one with a competing busy process (one thread spinning in pure
Python); the retention of a worker is its median samples/s under load divided by its
median samples/s without it, measured in the same run.

With more than one thread, the idle blocks also time fastnn and PyTorch on one thread:
next to one busy process, the scheduler leaves a team of two about one core, so a
library keeps roughly its one-thread speed over its two-thread speed ("one core"
below) - less the better it scales - and that is what each retention is set against.

`worker_main()` is the fastnn worker (the same line protocol as
fastnn.bench.torch_worker)."""

import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .compare import _json_default
from .harness import CpuMeter, TorchWorker, machine_info, measure
from .report import _fmt_rate, _fmt_ratio, _table
from .workloads import TRAIN_BATCHES, make_data

RETENTION_TARGET = 0.40
# fastnn with a fixed team (no thread-count adjustment), and in addition libgomp's own
# defaults when no OMP_WAIT_POLICY / GOMP_SPINCOUNT is set (what fastnn ran with before
# it chose its settings).
FIXED_TEAM = {"FASTNN_DYNAMIC_THREADS": "0"}
STOCK_LIBGOMP = {"GOMP_SPINCOUNT": "300000", **FIXED_TEAM}
# Python that burns one core until killed: the "other busy process".
_BUSY = "while True: pass"


class Competitor:
    """One busy process, started and stopped between blocks of measurements."""

    def __init__(self):
        self.proc = None

    def set(self, busy):
        if busy and self.proc is None:
            self.proc = subprocess.Popen([sys.executable, "-c", _BUSY])
            time.sleep(0.05)  # let it get going
        elif not busy and self.proc is not None:
            self.stop()

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def start_workers(torch=True, stock=True):
    """{name: worker process}: fastnn as it configures itself; unless `stock` is False,
    fastnn with a fixed team (when the user has not turned the adjustment off
    already) and fastnn with a fixed team under libgomp's stock settings (unless the
    user set OpenMP variables, which fastnn honours); PyTorch (when `torch` and
    importable)."""
    from fastnn.threads import get_dynamic_threads, openmp_settings

    entry = f"{__name__}:worker_main"
    workers = {"fastnn": TorchWorker.start(entry)}
    if stock and get_dynamic_threads():
        workers["fastnn_fixed_team"] = TorchWorker.start(entry, FIXED_TEAM)
    if stock and openmp_settings()["set_by"] == "fastnn":
        workers["fastnn_stock_libgomp"] = TorchWorker.start(entry, STOCK_LIBGOMP)
    if torch:
        workers["torch"] = TorchWorker.start()
    return {k: w for k, w in workers.items() if w is not None}


# The workers also timed on one thread in the idle blocks (when `threads` > 1).
ONE_THREAD = ("fastnn", "torch")


def bench_contention(batches, threads, workers, opts, log, competitor=None):
    """Rows {kind: 'contention', impl, batch, threads, idle_samples_per_s,
    busy_samples_per_s, retention, one_thread_idle_samples_per_s, one_core_share,
    background_cpu_idle, background_cpu_busy}; the one-thread figures (ONE_THREAD
    workers, `threads` > 1; else None) are the idle speed on one thread and its ratio
    to the idle speed on `threads`.

    For every batch size, `opts.repeats` rounds; each round measures every worker with
    the competitor off and on (the order alternates from round to round), blocks of
    ~opts.min_time seconds after an opts.pause settling sleep."""
    competitor = competitor or Competitor()
    rows = []
    try:
        for b in batches:
            log(f"  contention: batch {b}, {threads} threads")
            cases = [w.case(name, "train", b, threads) for name, w in workers.items()]
            solo = [
                workers[name].case(f"{name} on 1 thread", "train", b, 1)
                for name in ONE_THREAD
                if name in workers and threads > 1
            ]
            rates = {(c.name, busy): [] for c in cases + solo for busy in (False, True)}
            background = {False: [], True: []}
            for r in range(opts.repeats):
                for busy in (False, True) if r % 2 == 0 else (True, False):
                    competitor.set(busy)
                    meter = CpuMeter()
                    res = measure(
                        cases + ([] if busy else solo),
                        repeats=1,
                        min_time=opts.min_time,
                        warmup_time=opts.warmup,
                        pause=opts.pause,
                    )
                    bg = meter.background()
                    if bg is not None:
                        # The competitor's own core is not "other load" to report.
                        background[busy].append(
                            max(0.0, bg - (1 / (os.cpu_count() or 1) if busy else 0.0))
                        )
                    for c in cases + ([] if busy else solo):
                        rates[(c.name, busy)].append(b / res[c.name]["median_s"])
            competitor.set(False)
            for c in cases:
                idle = statistics.median(rates[(c.name, False)])
                loaded = statistics.median(rates[(c.name, True)])
                one = rates.get((f"{c.name} on 1 thread", False))
                one = statistics.median(one) if one else None
                rows.append(
                    {
                        "kind": "contention",
                        "impl": c.name,
                        "batch": b,
                        "threads": threads,
                        "idle_samples_per_s": idle,
                        "busy_samples_per_s": loaded,
                        "retention": loaded / idle,
                        "one_thread_idle_samples_per_s": one,
                        "one_core_share": one / idle if one else None,
                        "idle_rates": rates[(c.name, False)],
                        "busy_rates": rates[(c.name, True)],
                        "background_cpu_idle": _mean(background[False]),
                        "background_cpu_busy": _mean(background[True]),
                    }
                )
    finally:
        competitor.stop()
    return rows


def _mean(values):
    return sum(values) / len(values) if values else None


def contention_table(rows, batches):
    """Markdown table: idle and loaded samples/s and retention of each worker."""
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    by = {(r["impl"], r["batch"]): r for r in rows}
    solo = {r["impl"] for r in rows if r.get("one_core_share")}
    headers = ["batch"]
    for impl in impls:
        headers += [f"{impl} idle", f"{impl} loaded", f"{impl} kept"]
        headers += [f"{impl} one core"] if impl in solo else []
    out = []
    for b in batches:
        line = [b]
        for impl in impls:
            r = by.get((impl, b))
            width = 4 if impl in solo else 3
            if r is None:
                line += ["-"] * width
                continue
            line += [
                _fmt_rate(r["idle_samples_per_s"]),
                _fmt_rate(r["busy_samples_per_s"]),
                f"{100 * r['retention']:.0f}%",
            ]
            if impl in solo:
                share = r.get("one_core_share")
                line.append(f"{100 * share:.0f}%" if share else "-")
        out.append(line)
    text = _table(headers, out)
    if solo:
        text += (
            "\n'one core': the implementation's idle speed on one thread over its idle "
            "speed on all of them - about what it keeps when the competitor leaves its "
            "team one core."
        )
    bg = [r["background_cpu_idle"] for r in rows if r["background_cpu_idle"] is not None]
    if bg and max(bg) >= 0.05:
        text += (
            f"\nNOTE: other processes already used ~{100 * max(bg):.0f}% of the "
            "machine's CPU during the 'idle' blocks: the idle figures are not idle."
        )
    if "fastnn_stock_libgomp" in impls:
        ratios = [
            by[("fastnn", b)]["idle_samples_per_s"]
            / by[("fastnn_stock_libgomp", b)]["idle_samples_per_s"]
            for b in batches
            if ("fastnn", b) in by and ("fastnn_stock_libgomp", b) in by
        ]
        text += "\nIdle speed of fastnn's settings vs libgomp's stock settings: " + ", ".join(
            f"batch {b}: {_fmt_ratio(x)}" for b, x in zip(batches, ratios)
        )
    return text


def contention_targets(rows, batches):
    """[{name, value, threshold, met}]: fastnn keeps >= 40% of its idle speed and at
    least PyTorch's retention, at every batch size."""
    by = {(r["impl"], r["batch"]): r for r in rows}
    out = []
    for b in batches:
        f = by.get(("fastnn", b))
        if f is None:
            continue
        out.append(
            {
                "name": f"contention: fastnn keeps >= {RETENTION_TARGET:.0%} at batch {b}",
                "value": f["retention"],
                "threshold": RETENTION_TARGET,
                "met": f["retention"] >= RETENTION_TARGET,
            }
        )
        t = by.get(("torch", b))
        if t is not None:
            shares = f.get("one_core_share"), t.get("one_core_share")
            out.append(
                {
                    "name": f"contention: fastnn retention >= PyTorch's at batch {b}",
                    "value": f["retention"] / t["retention"],
                    "threshold": 1.0,
                    "met": f["retention"] >= t["retention"],
                    "note": (
                        f"kept {f['retention']:.0%} vs {t['retention']:.0%}; one core: "
                        f"{shares[0]:.0%} vs {shares[1]:.0%}"
                        if None not in shares
                        else None
                    ),
                }
            )
    return out


def run_command(args, out=sys.stdout):
    """`fastnn bench --contention` (the options of `fastnn bench`: --quick, --batches,
    --threads, --repeats, --min-time, --no-torch, --json/--no-json); returns 0."""
    import argparse

    quick = args.quick
    opts = argparse.Namespace(
        repeats=(3 if quick else 5) if args.repeats is None else args.repeats,
        min_time=(0.02 if quick else 0.3) if args.min_time is None else args.min_time,
        # Steady state: fastnn's thread governor needs one or two 0.1 s windows of
        # work to see a new competitor (every implementation gets the same warm-up).
        warmup=0.02 if quick else 0.3,
        pause=0.02 if quick else 0.15,
    )
    if opts.repeats < 1 or opts.min_time <= 0:
        print("fastnn bench: --repeats must be >= 1 and --min-time > 0", file=sys.stderr)
        return 2
    batches = args.batches or ([128] if quick else list(TRAIN_BATCHES))

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    rows, targets = run(args, opts, batches, out, log)
    if not args.no_json:
        path = (
            Path(args.json)
            if args.json
            else Path("bench")
            / "results"
            / ("contention-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "machine": machine_info(),
                    "command": sys.argv,
                    "measurements": rows,
                    "targets": targets,
                    "config": vars(opts),
                },
                indent=1,
                default=_json_default,
            )
        )
        print(f"Results written to {path}", file=out)
    return 0


def run(args, opts, batches, out, log):
    """The contention measurement and its table; returns (rows, targets). Runs at the
    largest of --threads, by default at fastnn's default thread count (all cores)."""
    from fastnn.threads import get_num_threads

    t = max(args.threads) if args.threads else get_num_threads()
    workers = start_workers(torch=not args.no_torch)
    try:
        rows = bench_contention(batches, t, workers, opts, log)
    finally:
        for w in workers.values():
            w.close()
    targets = contention_targets(rows, batches)
    print(
        f"\nTraining step with one competing busy process, samples/s, {t} threads "
        f"(median of {opts.repeats} idle and {opts.repeats} loaded blocks, alternating; "
        "each implementation in its own process):",
        file=out,
    )
    print(contention_table(rows, batches), file=out)
    for tg in targets:
        print(
            f"  [{'met' if tg['met'] else 'MISSED'}] {tg['name']}: {tg['value']:.2f} "
            f"(threshold {tg['threshold']:.2f})" + (f"; {tg['note']}" if tg.get("note") else ""),
            file=out,
        )
    return rows, targets


# --------------------------------------------------------------------------------------
# The fastnn worker process
# --------------------------------------------------------------------------------------
def worker_main():
    """The fastnn worker process (started by start_workers)."""
    import fastnn
    from fastnn.bench.harness import Case
    from fastnn.bench.torch_worker import serve
    from fastnn.bench.workloads import fastnn_train_step
    from fastnn.threads import openmp_settings

    X, y = make_data()

    def build(msg):
        if msg["kind"] != "train":
            raise ValueError(f"unsupported kind {msg['kind']!r}")
        return Case("train", fastnn_train_step(X, y, msg["batch"]), msg["batch"])

    serve(
        lambda: {"fastnn": fastnn.__version__, "openmp": openmp_settings()},
        fastnn.set_num_threads,
        build,
    )
