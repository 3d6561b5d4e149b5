"""Thread control. fastnn's kernels, GEMMs included, run on one OpenMP team of
`get_num_threads()` threads; the BLAS behind the GEMMs runs single-threaded inside
that team (csrc/gemm.c). Two thread pools side by side - OpenMP's and BLAS's - would
each spin while the other works and, with as many threads as cores, slow a training
step down many times over.

How OpenMP threads wait is chosen here, before the OpenMP runtime starts (this module
is the first fastnn imports): libgomp's stock behaviour is to spin for ~300,000
iterations (milliseconds) at the end of every parallel region. On a machine where
another busy process shares the cores, a spinning thread burns the core its preempted
team-mate needs, and a training step took 30-80x longer than idle. fastnn sets
GOMP_SPINCOUNT to SPIN_COUNT (tens of microseconds: long enough to bridge the gaps
between the kernels of a step, short enough to hand the core over when the wait is a
preemption) unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT, which win.
`fastnn bench --contention` measures the result against libgomp's stock settings and
PyTorch.

How many threads work is adjusted while fastnn runs (`ThreadGovernor`): a team of as
many threads as cores, sharing them with one other busy process, waits at every
barrier for whichever member was preempted, and a small-batch step kept a fifth of its
idle speed. Every ~0.1 s the training step and `predict` look at how much CPU other
processes used on this process's cores (Linux /proc/stat) and run on the cores they
leave free, never more than `set_num_threads` asked for. Results do not depend on the
count (see set_num_threads), so the adjustment changes speed only.
`set_dynamic_threads(False)` or FASTNN_DYNAMIC_THREADS=0 turns it off."""

import ctypes
import itertools
import math
import os
import time

# Spin iterations of an OpenMP thread waiting for work or for its team before it sleeps.
SPIN_COUNT = 10000
_USER_OPENMP = tuple(k for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ)
if not _USER_OPENMP:
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)

from threadpoolctl import ThreadpoolController  # noqa: E402

from . import _kernels  # noqa: E402 - loads the OpenMP runtime, which reads the above
from .validation import positive_int  # noqa: E402

_STARTUP_ENV = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}
if not _USER_OPENMP:
    # The runtime has read it; child processes (a PyTorch worker, say) keep their own.
    del os.environ["GOMP_SPINCOUNT"]


def set_num_threads(n):
    """Use n threads in fastnn's kernels and GEMMs. Results do not depend on n:
    reductions and GEMM blocks are split by data layout, never by thread."""
    n = positive_int(n, "number of threads")
    _kernels.set_num_threads(n)
    _single_threaded_blas()


def get_num_threads():
    """The thread count set by set_num_threads (the most fastnn's kernels use)."""
    return _kernels.get_num_threads()


def threads_in_use():
    """The thread count fastnn's kernels use now: get_num_threads(), or fewer while
    other processes keep this process's cores busy (see set_dynamic_threads)."""
    return _kernels.threads_in_use()


def set_dynamic_threads(enabled):
    """Let fastnn run on fewer than get_num_threads() threads while other processes
    keep cores busy (the default; FASTNN_DYNAMIC_THREADS=0 in the environment turns it
    off at start-up). Turning it off goes back to get_num_threads() threads now."""
    if not isinstance(enabled, bool):
        raise TypeError(f"set_dynamic_threads: enabled must be True or False, got {enabled!r}")
    governor.enabled = enabled and governor.available
    if not governor.enabled:
        _kernels.use_threads(_kernels.get_num_threads())


def get_dynamic_threads():
    """Whether the thread count follows the load of other processes."""
    return governor.enabled


class ThreadGovernor:
    """Sizes the team to the cores other processes leave free.

    `poll()` is cheap enough for every step (a clock read). At most every `interval`
    seconds it reads the busy time of this process's cores from /proc/stat, takes away
    this process's own CPU time, and runs the next kernels on round(cores - other
    processes' busy cores) threads, at least 1 and at most get_num_threads(); a thread
    is added back only for a core at least 3/4 free. Counting only other processes'
    time keeps the decision stable: our own threads, spinning or working, never look
    like load. A window longer than `stale` seconds (a pause between calls) decides
    nothing: what ran during the pause is no evidence about now."""

    interval = 0.1
    # Windows longer than this (a pause between calls) are not evidence of load now.
    stale = 0.25
    # A thread is added only when more than this much of a core is free for it.
    grow_margin = 0.75

    def __init__(
        self,
        stat_path="/proc/stat",
        clock=time.monotonic,
        cpu_time=time.process_time,
        autogroup_path="/proc/sys/kernel/sched_autogroup_enabled",
    ):
        self.stat_path, self.clock, self.cpu_time = stat_path, clock, cpu_time
        self.count_nice = _nice_competes(autogroup_path)
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
            self.available = self._busy_seconds() is not None
        except (AttributeError, OSError):  # not Linux
            self.cpus, self.available = [], False
        self.enabled = self.available and os.environ.get("FASTNN_DYNAMIC_THREADS", "1") != "0"
        self._last = None

    def poll(self):
        """Adjust the thread count if `interval` has passed since the last look."""
        if not self.enabled:
            return
        now = self.clock()
        last = self._last
        if last is not None and now - last[0] < self.interval:
            return
        busy, own = self._busy_seconds(), self.cpu_time()
        self._last = (now, busy, own)
        if last is None or busy is None or now - last[0] > self.stale:
            # The window would reach back into a pause between calls, in which other
            # programs may have run and stopped: no evidence either way, so the count
            # stays as the last window of this process's own work left it.
            return
        elapsed = now - last[0]
        other = max(0.0, (busy - last[1]) - (own - last[2])) / elapsed
        free, current = len(self.cpus) - other, _kernels.threads_in_use()
        want = math.floor(free + 0.5)
        if want > current and free < current + self.grow_margin:
            # Growing takes a clearly free core: our one thread sharing a core with the
            # other program for a moment looks like half a core free.
            want = current
        _kernels.use_threads(want)

    def _busy_seconds(self):
        """CPU seconds this process's cores spent busy (not idle or waiting for I/O)
        since boot, or None when /proc/stat cannot be read."""
        cpus = {f"cpu{c}" for c in self.cpus}
        ticks = 0
        try:
            with open(self.stat_path) as f:
                for line in f:
                    if not line.startswith("cpu"):
                        break
                    fields = line.split()
                    if fields[0] in cpus:
                        # user nice system idle iowait irq softirq steal (guest is in user)
                        v = [int(x) for x in fields[1:9]]
                        ticks += v[0] + v[2] + v[5] + v[6] + v[7]
                        if self.count_nice:
                            ticks += v[1]
        except (OSError, ValueError, IndexError):
            return None
        return ticks / os.sysconf("SC_CLK_TCK")


def _nice_competes(autogroup_path):
    """Whether processes running at a lower priority (nice > 0) take cores from ours.
    The scheduler runs our threads before them, except between sessions when the
    kernel groups tasks by session (autogroup): then each session gets an equal share
    whatever its nice value, and their time is load like any other."""
    try:
        with open(autogroup_path) as f:
            return f.read().strip() != "0"
    except OSError:  # a kernel without autogroup
        return False


def openmp_settings():
    """The OpenMP wait settings in effect: {'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT' (as
    the runtime read them at start-up, None when unset), 'set_by': 'user' or
    'fastnn'}."""
    return {
        "OMP_WAIT_POLICY": _STARTUP_ENV.get("OMP_WAIT_POLICY"),
        "GOMP_SPINCOUNT": _STARTUP_ENV.get("GOMP_SPINCOUNT"),
        "set_by": "user" if _USER_OPENMP else "fastnn",
    }


def _default_threads():
    """OMP_NUM_THREADS if set, else the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _fastnn_blas():
    """The threadpoolctl controllers of the BLAS fastnn's GEMMs call (scipy's): scipy's
    own library when it ships one (wheels do), else every BLAS (a shared library)."""
    blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    return [lib for lib in blas if f"{os.sep}scipy" in lib.filepath] or blas


def _openblas_hooks(lib):
    """Addresses of an OpenBLAS library's get/set_num_threads (with scipy's symbol
    prefix or 64-bit suffix when present), or None."""
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        try:
            get = getattr(lib.dynlib, f"{prefix}openblas_get_num_threads{suffix}")
            put = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}")
        except AttributeError:
            continue
        return (ctypes.cast(get, ctypes.c_void_p).value, ctypes.cast(put, ctypes.c_void_p).value)
    return None


def _single_threaded_blas():
    """Run the BLAS behind fastnn's GEMMs on one thread now, and let the GEMM kernel
    put it back on one thread whenever something else (say a threadpool_limits block
    around other code) changed that."""
    libs = _fastnn_blas()
    for lib in libs:
        if lib.num_threads != 1:
            lib.set_num_threads(1)
    hooks = [h for h in map(_openblas_hooks, libs) if h is not None]
    if len(hooks) == 1:
        _kernels.set_blas_thread_hooks(*hooks[0])


def _machine_threads():
    """The CPUs of the machine (not of this process's current limit)."""
    return os.cpu_count() or 1


# Large GEMMs are cut into one block per CPU of the machine (rounded up to a power of
# two), whatever the thread count in use: the same cut gives the same bits for every
# set_num_threads value.
_kernels.set_gemm_blocks(_machine_threads())
_kernels.set_num_threads(_default_threads())
_single_threaded_blas()
governor = ThreadGovernor()
