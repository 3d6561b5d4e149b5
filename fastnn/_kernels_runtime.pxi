# Process-wide settings (csrc/runtime.c), constants shared by the families, and the
# dropout random bits (csrc/random.h).

cdef extern from "binding.h" nogil:
    int FNN_PAR_MIN
    int FNN_ROW_CHUNKS
    int FNN_ACT_COUNT
    void fnn_set_num_threads(int n)
    int fnn_get_num_threads()
    void fnn_use_threads(int n)
    int fnn_num_threads
    void fnn_start_team()
    void fnn_set_gemm_blocks(int n)
    void fnn_set_blas_thread_hooks(void *get, void *set)
    uint32_t fnn_random_bits(uint64_t seed, uint64_t counter, uint64_t index)

PARALLEL_MIN_ELEMENTS = FNN_PAR_MIN
# Column-sum kernels (bias gradient, batch norm) take a float64 scratch of
# COLSUM_SCRATCH_ROWS * width elements (width: columns, 2 * channels for batch norm).
COLSUM_SCRATCH_ROWS = FNN_ROW_CHUNKS + 3


# Dropout masks index their elements with 32 bits (csrc/random.h).
cdef int64_t _MASK_ELEMENTS_MAX = 4294967295


cdef inline Py_ssize_t _colsum_scratch(Py_ssize_t width) noexcept:
    return (FNN_ROW_CHUNKS + 3) * width


def set_num_threads(int n):
    """Threads of every parallel kernel (values below 1 mean 1)."""
    fnn_set_num_threads(n)


def get_num_threads():
    """The thread count set by set_num_threads."""
    return fnn_get_num_threads()


def use_threads(int n):
    """Run the next parallel regions on n threads, clamped to [1, get_num_threads()]."""
    fnn_use_threads(n)


def threads_in_use():
    """The thread count parallel regions use now."""
    return fnn_num_threads


def start_team():
    """Create the OpenMP team of get_num_threads() threads for the calling thread now
    (fastnn.memory checks the address space for their stacks first)."""
    with nogil:
        fnn_start_team()


def set_gemm_blocks(int n):
    """Cut large GEMMs into at most the power of two >= n blocks (one per thread)."""
    fnn_set_gemm_blocks(n)


def set_blas_thread_hooks(size_t get_threads, size_t set_threads):
    """Addresses of the BLAS library's int get_num_threads(void) and
    void set_num_threads(int) (0, 0 to forget them): fastnn's GEMMs then keep BLAS on
    one thread whatever else changes it."""
    fnn_set_blas_thread_hooks(<void *>get_threads, <void *>set_threads)


def random_bits(uint64_t seed, uint64_t counter, out):
    """out[k] = the 32 dropout bits of element k for (seed, counter); out: uint32, 1-D."""
    cdef cnp.ndarray a = _arr(out, "random_bits", "out", 1)
    cdef uint32_t *p = <uint32_t *>_buf(out, "random_bits", "out", cnp.NPY_UINT32, a.shape[0],
                                        _W)
    cdef Py_ssize_t k, n = a.shape[0]
    with nogil:
        for k in range(n):
            p[k] = fnn_random_bits(seed, counter, k)


cdef extern from "binding.h" nogil:
    double fnn_peak_gflops(int nthreads, double seconds)
    void fnn_interruptions(int nthreads, double seconds, double threshold_us, double *gaps,
                           Py_ssize_t cap, Py_ssize_t *counts)


def peak_gflops(int threads, double seconds=0.2):
    """The CPU's peak float32 rate in GFLOP/s on `threads` threads (fused multiply-adds
    on its widest vectors, each thread for about `seconds`; the sum over the threads),
    or None where it cannot be measured (no FMA, not x86-64). A benchmark's yardstick:
    no kernel does more arithmetic per second."""
    if threads < 1:
        raise ValueError(f"peak_gflops: threads must be >= 1, got {threads}")
    if not seconds > 0:
        raise ValueError(f"peak_gflops: seconds must be > 0, got {seconds}")
    cdef double r
    with nogil:
        r = fnn_peak_gflops(threads, seconds)
    return None if r < 0 else r


def interruptions(int threads, double seconds=0.5, double threshold_us=3.0):
    """How the machine interrupts running threads: `threads` threads each read the clock
    for `seconds` and note every gap longer than `threshold_us` (the CPU taken away by
    a timer tick, the hypervisor or another task). Returns one float64 array of gap
    lengths in microseconds per thread (at most 65,536 each)."""
    if threads < 1:
        raise ValueError(f"interruptions: threads must be >= 1, got {threads}")
    if not 0 < seconds <= 60:
        raise ValueError(f"interruptions: seconds must be in (0, 60], got {seconds}")
    if not threshold_us > 0:
        raise ValueError(f"interruptions: threshold_us must be > 0, got {threshold_us}")
    cdef Py_ssize_t cap = 65536
    gaps, counts = np.empty((threads, cap)), np.zeros(threads, np.intp)
    cdef double[:, ::1] g = gaps
    cdef Py_ssize_t[::1] c = counts
    with nogil:
        fnn_interruptions(threads, seconds, threshold_us, &g[0, 0], cap, &c[0])
    return [gaps[t, : min(counts[t], cap)].copy() for t in range(threads)]
