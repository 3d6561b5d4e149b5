# Weight initialisation (csrc/init.c): uniform draws from the counter-based generator,
# filled in place.

cdef extern from "init.h" nogil:
    pass

cdef extern from "binding.h" nogil:
    void fnn_init_uniform "FNN_FUSED(fnn_init_uniform)"(
        Py_ssize_t n, floating *x, uint64_t seed, double lo, double hi)


def init_uniform(x, uint64_t seed, double lo, double hi):
    """Fill x (C-contiguous, writable, float32/float64) in place with U(lo, hi) draws
    that depend only on (seed, element index)."""
    if _is_f32(x, "init_uniform", "x"):
        _init_uniform(<float *>NULL, x, seed, lo, hi)
    else:
        _init_uniform(<double *>NULL, x, seed, lo, hi)


cdef int _init_uniform(floating *t, x, uint64_t seed, double lo, double hi) except -1:
    cdef str fn = "init_uniform"
    cdef cnp.ndarray X = _arr(x, fn, "x", 0)
    cdef floating *px = _flt(t, x, fn, "x", X.size, _W)
    with nogil:
        fnn_init_uniform(X.size, px, seed, lo, hi)
    return 0
