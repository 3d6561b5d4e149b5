# Inverted dropout with counter-based masks (csrc/dropout.c, csrc/random.h).

cdef extern from "binding.h" nogil:
    void fnn_dropout_forward "FNN_FUSED(fnn_dropout_forward)"(
        Py_ssize_t n, const floating *x, floating *y, uint8_t *mask, double p,
        double scale, uint64_t seed, uint64_t counter, uint64_t offset)
    void fnn_dropout_backward "FNN_FUSED(fnn_dropout_backward)"(
        Py_ssize_t n, const floating *gy, const uint8_t *mask, double scale, floating *gx)


def dropout_forward(x, y, mask, double p, double scale, uint64_t seed, uint64_t counter,
                    uint64_t offset=0):
    """y = x * mask * scale, mask (uint8) drawn from (seed, counter), element i from
    generator index offset + i (a shard of a larger batch); y, mask: x's shape;
    offset + x.size <= 2**32."""
    if _is_f32(x, "dropout_forward", "x"):
        _dropout_forward(<float *>NULL, x, y, mask, p, scale, seed, counter, offset)
    else:
        _dropout_forward(<double *>NULL, x, y, mask, p, scale, seed, counter, offset)


cdef int _dropout_forward(floating *t, x, y, mask, double p, double scale, uint64_t seed,
                          uint64_t counter, uint64_t offset) except -1:
    cdef str fn = "dropout_forward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 0)
    if X.size > _MASK_ELEMENTS_MAX:
        raise ValueError(f"{fn}: dropout masks cover at most 2**32 - 1 elements, got "
                         f"{X.size}")
    if offset + <uint64_t>X.size > _MASK_ELEMENTS_MAX + 1:
        raise ValueError(f"{fn}: offset {offset} + {X.size} elements exceed the 2**32 "
                         "indices of a dropout mask")
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *py = _flt_like(t, y, fn, "y", X, "x", _W)
    _same_shape(mask, X, fn, "mask", "x")
    cdef uint8_t *pmask = _u8(mask, fn, "mask", X.size, _W)
    with nogil:
        fnn_dropout_forward(X.size, px, py, pmask, p, scale, seed, counter, offset)
    return 0


def dropout_backward(gy, mask, double scale, gx):
    """gx = gy * mask * scale; mask, gx: gy's shape (gx may be gy)."""
    if _is_f32(gy, "dropout_backward", "gy"):
        _dropout_backward(<float *>NULL, gy, mask, scale, gx)
    else:
        _dropout_backward(<double *>NULL, gy, mask, scale, gx)


cdef int _dropout_backward(floating *t, gy, mask, double scale, gx) except -1:
    cdef str fn = "dropout_backward"
    cdef cnp.ndarray G = _arr(gy, fn, "gy", 0)
    cdef floating *pgy = _flt(t, gy, fn, "gy", G.size)
    _same_shape(mask, G, fn, "mask", "gy")
    cdef uint8_t *pmask = _u8(mask, fn, "mask", G.size)
    cdef floating *pgx = _flt_like(t, gx, fn, "gx", G, "gy", _W)
    with nogil:
        fnn_dropout_backward(G.size, pgy, pmask, scale, pgx)
    return 0
