"""Allocation guards: refuse an allocation that cannot fit before attempting it, and
bound what a model rebuilt from a file may allocate by what the file holds.

Python cannot catch being killed by the kernel's OOM killer, and a half-satisfied huge
allocation can leave a library (OpenBLAS's allocator) spinning; so where fastnn knows
a size in advance it asks `check` first and raises MemoryError with the numbers."""

import contextlib
import ctypes
import mmap
import resource
import threading

from . import _kernels

_local = threading.local()


def _meminfo():
    """{field: bytes} of /proc/meminfo (Linux), {} elsewhere."""
    try:
        with open("/proc/meminfo") as f:
            return {
                line.split(":")[0]: int(line.split()[1]) * 1024
                for line in f
                if line.split()[1:2] and line.split()[1].isdigit()
            }
    except OSError:
        return {}


def _address_space_left():
    """Bytes of address space this process may still map under RLIMIT_AS, or None."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return None
    return max(0, soft - vm)


def available_bytes():
    """What a new allocation can get at most right now: the memory the kernel reports
    available (plus free swap) and the address space left under a resource limit;
    None when neither is known."""
    info = _meminfo()
    limits = [
        v
        for v in (
            _address_space_left(),
            info.get("MemAvailable", 0) + info.get("SwapFree", 0) or None,
        )
        if v is not None
    ]
    return min(limits) if limits else None


def _size(n):
    """n bytes for a message: in GiB, MiB or KiB, whichever reads best."""
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.2f} {unit}"
    return f"{n / 1024:.2f} KiB"


def check(nbytes, what):
    """MemoryError, before anything is allocated, if `nbytes` more bytes cannot fit."""
    nbytes = int(nbytes)
    left = available_bytes()
    if left is not None and nbytes > left:
        raise MemoryError(
            f"{what} needs {_size(nbytes)} ({nbytes} bytes); only "
            f"{_size(left)} of memory is available"
        )


# OpenBLAS's work buffer (BUFFER_SIZE on x86-64, 32 MiB) and a little room for its header.
BLAS_BUFFER_BYTES = (32 << 20) + (1 << 20)
_blas = {"buffers": 0, "pool": None}  # OpenBLAS's buffer pool is process-wide
_blas_lock = threading.Lock()


def _thread_stack_bytes():
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)  # glibc's default thread stack
    return 8 << 20 if soft in (resource.RLIM_INFINITY, 0) else soft


def _openblas_pool():
    """blas_memory_alloc/free of the OpenBLAS behind fastnn's GEMMs (ctypes functions),
    or None for another BLAS."""
    from .threads import _fastnn_blas  # (imports the extension; memory is imported first)

    for lib in _fastnn_blas():
        try:
            alloc, free = lib.dynlib.blas_memory_alloc, lib.dynlib.blas_memory_free
        except AttributeError:
            continue
        alloc.restype, alloc.argtypes = ctypes.c_void_p, [ctypes.c_int]
        free.restype, free.argtypes = None, [ctypes.c_void_p]
        return alloc, free
    return None


def _reserve_or_raise(nbytes, what):
    """MemoryError unless `nbytes` of address space can be mapped right now (mapped and
    unmapped again untouched: nothing is committed)."""
    if nbytes <= 0:
        return
    try:
        mmap.mmap(-1, nbytes).close()
    except OSError:
        left = _address_space_left()
        limit = (
            f"; {_size(left)} is left under this process's address-space limit "
            "(RLIMIT_AS, `ulimit -v`)"
            if left is not None
            else ""
        )
        raise MemoryError(
            f"{what} need {_size(nbytes)} of address space, which cannot be mapped{limit}. "
            "Raise the limit, free memory, or use fewer threads (fastnn.set_num_threads)"
        ) from None


def ensure_compute_ready():
    """Make sure the calling thread can run fastnn's kernels: its OpenMP team of
    get_num_threads() threads exists and OpenBLAS holds one work buffer per thread;
    MemoryError (and nothing started) when the address space cannot hold them.

    Neither library can fail cleanly there: libgomp ends the process when it cannot
    create a thread, and OpenBLAS retries a failed buffer allocation forever (at 100%
    CPU). So the space is mapped once as a test first; after that OpenBLAS reuses its
    buffers and the team persists, and this costs two comparisons. Called before a
    context's workspaces are allocated and before a parameter large enough for a parallel
    initialisation is created. (Several Python threads training at once make more
    concurrent BLAS calls than one team: OpenBLAS then adds buffers on its own.)"""
    n = _kernels.get_num_threads()
    if getattr(_local, "team", 0) >= n and _blas["buffers"] >= n:
        return
    with _blas_lock:
        team = getattr(_local, "team", 0)
        if _blas["pool"] is None:
            _blas["pool"] = _openblas_pool()
            if _blas["pool"] is None:  # another BLAS: nothing of this kind to prepare
                _blas["buffers"] = float("inf")
        buffers = max(0, n - _blas["buffers"])
        _reserve_or_raise(
            max(0, n - max(team, 1)) * _thread_stack_bytes() + buffers * BLAS_BUFFER_BYTES,
            f"fastnn's {n} threads (their stacks and the BLAS library's work buffers)",
        )
        if team < n:
            _kernels.start_team()
            _local.team = n
        if buffers:
            alloc, free = _blas["pool"]
            # n buffers held at once: the pool then has n, which it reuses from now on
            held = [alloc(0) for _ in range(n)]
            for p in held:
                if p:
                    free(p)
            _blas["buffers"] = max(_blas["buffers"], sum(1 for p in held if p))


class BudgetExceeded(ValueError):
    """More parameter elements were declared than a budget allows."""


@contextlib.contextmanager
def parameter_budget(elements, what):
    """Within the block, creating parameters of more than `elements` elements in all
    (in this thread) raises BudgetExceeded before they are allocated: a model rebuilt
    from a file declares no more than the file holds."""
    previous = getattr(_local, "budget", None)
    _local.budget = [int(elements), what]
    try:
        yield
    finally:
        _local.budget = previous


def charge(shape, itemsize, what):
    """Account for a new parameter of `shape` (elements of `itemsize` bytes, with its
    gradient): against the current parameter_budget, then against the memory left."""
    n = 1
    for d in shape:
        n *= int(d)
    budget = getattr(_local, "budget", None)
    if budget is not None:
        budget[0] -= n
        if budget[0] < 0:
            raise BudgetExceeded(
                f"{what} of shape {tuple(int(d) for d in shape)} goes beyond the {budget[1]}"
            )
    check(2 * n * itemsize, f"{what} of shape {tuple(int(d) for d in shape)} (with its gradient)")
    if n >= _kernels.PARALLEL_MIN_ELEMENTS:
        ensure_compute_ready()  # its initialisation starts the threads
