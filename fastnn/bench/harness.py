"""The timing harness of `fastnn bench`: the machine's description, interleaved
measurement of cases (median of repeats, rotating order, a pause that lets thread
pools park), the CPU other processes take meanwhile, the PyTorch worker process and
the thread settings of a measurement."""

import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import fastnn
from fastnn import _kernels


# --------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {}
    for line in info.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            fields.setdefault(k, v)
    name = fields.get("model name", platform.machine())
    flags = set(fields.get("flags", "").split())
    isa = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    fam = fields.get("cpu family")
    model = fields.get("model")
    extra = f" (family {fam}, model {model})" if fam and model else ""
    return f"{name}{extra}" + (f", {'+'.join(isa)}" if isa else "")


def peak_gflops(threads, seconds=0.1, repeats=3):
    """This CPU's peak float32 rate on `threads` threads (GFLOP/s, the best of `repeats`
    runs of fused multiply-adds on its widest vectors: a run the OS interrupts comes
    out low, never high), or None where it cannot be measured. Measure it before the
    benchmark's worker processes start, on a quiet machine."""
    runs = [_kernels.peak_gflops(threads, seconds) for _ in range(repeats)]
    return None if None in runs else max(runs)


def interruptions(threads, seconds=0.5):
    """How often and for how long this machine takes a CPU away from a running thread
    (timer ticks, the hypervisor, other tasks), on `threads` threads at once for
    `seconds`: {"per_second": interruptions per second summed over the threads,
    "gaps_us": their lengths in microseconds}. Measure it on a quiet machine."""
    gaps = _kernels.interruptions(threads, seconds)
    return {"per_second": sum(len(g) for g in gaps) / seconds, "gaps_us": np.concatenate(gaps)}


def p99_floor(interrupts, duration):
    """The 99th percentile to expect, from the machine's interruptions alone, of a call
    that takes `duration` seconds on the threads `interrupts` was measured on (a result
    of interruptions()): the call waits for any of its threads the machine interrupts,
    which happens to a share p = duration * per_second of the calls (interruptions
    taken as random in time); once p > 1%, the 99th percentile is duration + the
    (1 - 1% / p) quantile of the interruptions' lengths, whatever the code does. An
    estimate: periodic ticks can fall between a loop's calls more or less often."""
    hit = duration * interrupts["per_second"]
    gaps = interrupts["gaps_us"]
    if hit <= 0.01 or not len(gaps):
        return duration
    return duration + float(np.quantile(gaps, 1 - 0.01 / hit)) * 1e-6


def machine_info(worker=None):
    """CPU, cores, BLAS libraries and versions: what a figure depends on."""
    from threadpoolctl import threadpool_info

    import scipy

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    libs = [
        {
            k: lib.get(k)
            for k in (
                "user_api",
                "internal_api",
                "prefix",
                "version",
                "architecture",
                "threading_layer",
                "num_threads",
                "filepath",
            )
        }
        for lib in threadpool_info()
    ]
    info = {
        "cpu": _cpu_model(),
        "cores_available": cores,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "fastnn": fastnn.__version__,
        "fastnn_parallel_min_elements": _kernels.PARALLEL_MIN_ELEMENTS,
        "torch": worker.info["torch"] if worker is not None else None,
        "threadpools": libs,
        "env": {
            k: os.environ[k]
            for k in (
                "OMP_NUM_THREADS",
                "OMP_WAIT_POLICY",
                "GOMP_SPINCOUNT",
                "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS",
            )
            if k in os.environ
        },
    }
    if worker is not None:
        info["torch_config"] = {k: v for k, v in worker.info.items() if k != "torch"}
    return info


def blas_summary(info):
    parts = []
    for lib in info["threadpools"]:
        if lib["user_api"] != "blas":
            continue
        who = (
            "fastnn/scipy"
            if "scipy.libs" in (lib["filepath"] or "")
            else (
                "numpy" if "numpy" in (lib["filepath"] or "") else Path(lib["filepath"] or "?").name
            )
        )
        parts.append(
            f"{lib['internal_api']} {lib['version']} ({lib['architecture']}, "
            f"{lib['threading_layer']}) for {who}"
        )
    return "; ".join(parts) or "none found by threadpoolctl"


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------
# The benchmark's own worker processes (pids): the CPU they use is the measurement, not
# load from other processes.
_WORKER_PIDS: set[int] = set()


def _process_cpu(pid):
    """User + system CPU seconds process `pid` has used (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class CpuMeter:
    """CPU used by *other* processes while a measurement runs, as a fraction of all the
    machine's cores (Linux /proc/stat minus the CPU time of this process and of the
    benchmark's worker processes). On a shared machine, a 2-thread figure taken while
    another process holds a core is not a measurement of the code, and this says so."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        import resource

        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system, irq softirq steal
        ru = resource.getrusage(resource.RUSAGE_SELF)
        own = ru.ru_utime + ru.ru_stime + sum(_process_cpu(p) for p in tuple(_WORKER_PIDS))
        return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own

    def background(self):
        end = self._sample()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, other / (wall * (os.cpu_count() or 1))) if wall > 0 else None


class Case:
    """One thing to time: `fn()` does `items` samples of work. `setup()` (untimed) runs
    before each block of calls, e.g. to set a thread count."""

    def __init__(self, name, fn, items=1, setup=None):
        self.name, self.fn, self.items, self.setup = name, fn, items, setup

    def calibrate(self, warmup_time):
        """Warm up; the best time of a single call."""
        n, t0, best = 0, time.perf_counter(), math.inf
        while True:
            t = time.perf_counter()
            self.fn()
            best = min(best, time.perf_counter() - t)
            n += 1
            if n >= 3 and time.perf_counter() - t0 >= warmup_time:
                return best

    def timed(self, n):
        """Seconds for n calls, after one settling call (caches after the case before)."""
        fn = self.fn
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - t0


class TorchWorker:
    """A PyTorch process (fastnn.bench.torch_worker) answering one command at a time;
    None from start() when torch cannot be imported there."""

    def __init__(self, proc):
        self.proc = proc

    @classmethod
    def start(cls, entry="fastnn.bench.torch_worker:main", env=None):
        """A worker process running the function `entry` ('module:function', the
        PyTorch worker by default) with `env` added to its environment."""
        import subprocess

        # The worker imports the fastnn this process runs: it gets this process's
        # sys.path (after any PYTHONPATH of its environment) and not the working
        # directory first, which from a source tree would be an unbuilt fastnn.
        env = dict(os.environ, **(env or {}))
        env["PYTHONPATH"] = os.pathsep.join(
            [p for p in [os.environ.get("PYTHONPATH")] if p] + [p or os.getcwd() for p in sys.path]
        )
        module, function = entry.split(":")
        code = f"import sys; del sys.path[0]; from {module} import {function}; {function}()"
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        worker = cls(proc)
        _WORKER_PIDS.add(proc.pid)
        try:
            worker.info = worker.ask(cmd="info")
        except (OSError, ValueError, json.JSONDecodeError):
            worker.close()
            return None
        return worker

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise ValueError("the PyTorch worker stopped")
        reply = json.loads(line)
        if "error" in reply:
            raise ValueError(f"the PyTorch worker: {reply['error']}")
        return reply

    def case(self, name, kind, batch, threads, fused=False):
        return RemoteCase(
            self,
            name,
            batch,
            dict(cmd="setup", kind=kind, batch=batch, threads=threads, fused=fused),
        )

    def close(self):
        try:
            self.ask(cmd="quit")
        except (OSError, ValueError):
            pass
        self.proc.wait(timeout=10)
        _WORKER_PIDS.discard(self.proc.pid)


class RemoteCase(Case):
    """A case timed in the PyTorch worker: set up there, timed there (the same loops as
    Case's), interleaved here with the local cases."""

    def __init__(self, worker, name, items, setup_msg):
        super().__init__(name, None, items, setup=lambda: worker.ask(**setup_msg))
        self.worker = worker

    def calibrate(self, warmup_time):
        return self.worker.ask(cmd="calibrate", warmup=warmup_time)["best"]

    def timed(self, n):
        return self.worker.ask(cmd="time", n=n)["seconds"]


def measure(cases, repeats=7, min_time=0.2, warmup_time=0.1, pause=0.0):
    """Interleaved timing: per case the median over `repeats` blocks of the time per
    call; each block runs as many calls as fill ~min_time. The order of the cases
    rotates from repeat to repeat, so drift on a shared machine hits all alike.

    `pause` seconds of sleep precede every block: the thread pools of the case before
    (OpenBLAS workers spin ~0.1 s after a call, OpenMP workers a little) must park
    first, or they take cores from the next case. Without it, interleaving NumPy and
    PyTorch after fastnn on 2 cores cost them up to 40% at batch 16.

    Returns {name: {"per_call_s": [...], "median_s", "calls_per_repeat",
    "items_per_s", "background_cpu"}}, the last being the share of the machine's CPU
    that other processes used meanwhile (None where it cannot be read)."""
    meter = CpuMeter()
    calls = {}
    for c in cases:  # warm-up and calibration
        if c.setup:
            c.setup()
        if pause:
            time.sleep(pause)
        best = c.calibrate(warmup_time)
        calls[c.name] = max(1, int(round(min_time / max(best, 1e-9))))
    per_call = {c.name: [] for c in cases}
    for r in range(repeats):
        k = r % len(cases)
        for c in cases[k:] + cases[:k]:
            if c.setup:
                c.setup()
            if pause:
                time.sleep(pause)
            n = calls[c.name]
            per_call[c.name].append(c.timed(n) / n)
    background = meter.background()
    out = {}
    for c in cases:
        med = statistics.median(per_call[c.name])
        out[c.name] = {
            "per_call_s": per_call[c.name],
            "median_s": med,
            "calls_per_repeat": calls[c.name],
            "items_per_s": c.items / med,
            "background_cpu": background,
        }
    return out


# --------------------------------------------------------------------------------------
# Thread control
# --------------------------------------------------------------------------------------
def set_threads(n):
    """n threads for fastnn (its kernels and GEMMs) and for NumPy's BLAS (the PyTorch
    worker sets its own with each case). fastnn keeps the BLAS behind its GEMMs
    (scipy's) single-threaded by itself."""
    from threadpoolctl import ThreadpoolController

    fastnn.set_num_threads(n)
    for lib in ThreadpoolController().lib_controllers:
        if lib.user_api == "blas" and "numpy" in lib.filepath:
            lib.set_num_threads(n)
