"""Thread control: fastnn's OpenMP kernels and the BLAS behind its GEMMs together."""
import os

from threadpoolctl import threadpool_limits

from . import _kernels
from .validation import positive_int


def set_num_threads(n):
    """Use n threads in fastnn's kernels and in BLAS (through threadpoolctl).

    Results do not depend on n: fastnn's reductions split work by data layout, never
    by thread."""
    n = positive_int(n, "number of threads")
    _kernels.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """The thread count fastnn's kernels use."""
    return _kernels.get_num_threads()


def _default_threads():
    """OMP_NUM_THREADS if set, else the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_kernels.set_num_threads(_default_threads())
