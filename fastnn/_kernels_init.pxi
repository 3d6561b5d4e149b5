# Weight initialisation kernel (csrc/init.c), included by _kernels.pyx.

cdef extern from "init.h" nogil:
    void fnn_init_uniform_f32(Py_ssize_t n, float *x, uint64_t seed, double lo, double hi)
    void fnn_init_uniform_f64(Py_ssize_t n, double *x, uint64_t seed, double lo, double hi)

cdef _init_target(object x, str where):
    """x flattened, for a writable C-contiguous float32/float64 array; else
    TypeError/ValueError."""
    import numpy as np
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: expected a float32 or float64 ndarray, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError(f"{where}: the array must be C-contiguous and writable")
    return x.reshape(-1)


def init_uniform(x, uint64_t seed, double lo, double hi):
    """Fill x (C-contiguous float32/float64) in place with U(lo, hi) draws of `seed`."""
    flat = _init_target(x, "init_uniform")
    cdef float[::1] xf
    cdef double[::1] xd
    cdef Py_ssize_t n = flat.shape[0]
    if n == 0:
        return
    if flat.dtype.itemsize == 4:
        xf = flat
        with nogil:
            fnn_init_uniform_f32(n, &xf[0], seed, lo, hi)
    else:
        xd = flat
        with nogil:
            fnn_init_uniform_f64(n, &xd[0], seed, lo, hi)
