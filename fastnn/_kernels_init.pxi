# Weight initialisation (csrc/init.c): uniform and normal draws from the counter-based
# generator, filled in place.

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


cdef extern from "binding.h" nogil:
    void fnn_init_normal "FNN_FUSED(fnn_init_normal)"(
        Py_ssize_t n, floating *x, uint64_t seed, double mean, double std)
    void fnn_init_trunc_normal "FNN_FUSED(fnn_init_trunc_normal)"(
        Py_ssize_t n, floating *x, uint64_t seed, double mean, double std, double a, double b)


def init_normal(x, uint64_t seed, double mean, double std):
    """Fill x (C-contiguous, writable, float32/float64) in place with N(mean, std^2)
    draws that depend only on (seed, element index)."""
    if _is_f32(x, "init_normal", "x"):
        _init_normal(<float *>NULL, x, seed, mean, std, 0.0, 0.0, False)
    else:
        _init_normal(<double *>NULL, x, seed, mean, std, 0.0, 0.0, False)


def init_trunc_normal(x, uint64_t seed, double mean, double std, double a, double b):
    """Fill x in place with N(mean, std^2) draws restricted to [a, b] (std > 0, a < b),
    depending only on (seed, element index)."""
    if not (std > 0 and a < b):
        raise ValueError(f"init_trunc_normal: need std > 0 and a < b, got std={std}, "
                         f"a={a}, b={b}")
    if _is_f32(x, "init_trunc_normal", "x"):
        _init_normal(<float *>NULL, x, seed, mean, std, a, b, True)
    else:
        _init_normal(<double *>NULL, x, seed, mean, std, a, b, True)


cdef int _init_normal(floating *t, x, uint64_t seed, double mean, double std, double a,
                      double b, bint truncated) except -1:
    cdef str fn = "init_trunc_normal" if truncated else "init_normal"
    cdef cnp.ndarray X = _arr(x, fn, "x", 0)
    cdef floating *px = _flt(t, x, fn, "x", X.size, _W)
    with nogil:
        if truncated:
            fnn_init_trunc_normal(X.size, px, seed, mean, std, a, b)
        else:
            fnn_init_normal(X.size, px, seed, mean, std)
    return 0
