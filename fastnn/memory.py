"""Allocation guards: refuse an allocation that cannot fit before attempting it, and
bound what a model rebuilt from a file may allocate by what the file holds.

Python cannot catch being killed by the kernel's OOM killer, and a half-satisfied huge
allocation can leave a library (OpenBLAS's allocator) spinning; so where fastnn knows
a size in advance it asks `check` first and raises MemoryError with the numbers."""

import contextlib
import resource
import threading

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


def _gib(n):
    return f"{n / 2**30:.2f} GiB"


def check(nbytes, what):
    """MemoryError, before anything is allocated, if `nbytes` more bytes cannot fit."""
    nbytes = int(nbytes)
    left = available_bytes()
    if left is not None and nbytes > left:
        raise MemoryError(
            f"{what} needs {_gib(nbytes)} ({nbytes} bytes); only "
            f"{_gib(left)} of memory is available"
        )


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
