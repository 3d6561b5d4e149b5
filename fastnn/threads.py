"""Thread control. fastnn's kernels, GEMMs included, run on one OpenMP team of
`get_num_threads()` threads; the BLAS behind the GEMMs runs single-threaded inside
that team (csrc/gemm.c). Two thread pools side by side - OpenMP's and BLAS's - would
each spin while the other works and, with as many threads as cores, slow a training
step down many times over."""
import os

from threadpoolctl import ThreadpoolController

from . import _kernels
from .validation import positive_int


def set_num_threads(n):
    """Use n threads in fastnn's kernels and GEMMs. Results do not depend on n:
    reductions and GEMM blocks are split by data layout, never by thread."""
    n = positive_int(n, "number of threads")
    _kernels.set_num_threads(n)
    _single_threaded_blas()


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


def _single_threaded_blas():
    """Run the BLAS fastnn's GEMMs call (scipy's) on one thread. When scipy ships its
    own BLAS library (wheels do), numpy's BLAS keeps its thread count; when the two
    share one library, it is limited for both."""
    blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    scipys = [lib for lib in blas if f"{os.sep}scipy" in lib.filepath]
    for lib in scipys or blas:
        if lib.num_threads != 1:
            lib.set_num_threads(1)


_kernels.set_num_threads(_default_threads())
_single_threaded_blas()
