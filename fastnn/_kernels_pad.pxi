# Reflect, replicate and circular padding of the last two axes (csrc/pad.h): declarations
# and checked wrappers. Every size is checked before a kernel runs, so no pad can read
# outside its plane: reflect pads must be < the axis' length, circular pads <= it (the
# limits of torch's F.pad).

cdef extern from "pad.h" nogil:
    enum:
        FNN_PAD_REFLECT
        FNN_PAD_REPLICATE
        FNN_PAD_CIRCULAR
    ctypedef struct fnn_pad_geom:
        Py_ssize_t planes, H, W, top, bottom, left, right
        int mode

cdef extern from "binding.h" nogil:
    void fnn_pad_forward "FNN_FUSED(fnn_pad_forward)"(const fnn_pad_geom *g,
                                                      const floating *x, floating *y)
    void fnn_pad_backward "FNN_FUSED(fnn_pad_backward)"(const fnn_pad_geom *g,
                                                        const floating *gy, floating *gx)

PAD_MODES = {"reflect": FNN_PAD_REFLECT, "replicate": FNN_PAD_REPLICATE,
             "circular": FNN_PAD_CIRCULAR}


cdef fnn_pad_geom _pad_geom(str fn, cnp.ndarray X, tuple pads, str mode) except *:
    """The geometry of padding x (..., H, W) by pads (top, bottom, left, right) in mode,
    checked against torch's limits."""
    cdef fnn_pad_geom g
    if mode not in PAD_MODES:
        raise ValueError(f"{fn}: mode must be one of {sorted(PAD_MODES)}, got {mode!r}")
    if len(pads) != 4:
        raise ValueError(f"{fn}: pads must be (top, bottom, left, right), got {pads!r}")
    g.top, g.bottom, g.left, g.right = pads
    g.mode = PAD_MODES[mode]
    g.H, g.W = X.shape[X.ndim - 2], X.shape[X.ndim - 1]  # _arr: ndim >= 2
    g.planes = X.size // (g.H * g.W) if g.H * g.W else 0
    if min(pads) < 0:
        raise ValueError(f"{fn}: pads must be >= 0, got {pads}")
    if g.H < 1 or g.W < 1:
        raise ValueError(f"{fn}: cannot pad empty planes of shape {(<object>X).shape}")
    for p, n, axis in ((g.top, g.H, -2), (g.bottom, g.H, -2), (g.left, g.W, -1),
                       (g.right, g.W, -1)):
        if mode == "reflect" and p >= n:
            raise ValueError(f"{fn}: reflect padding {p} must be less than the input's "
                             f"size {n} on axis {axis} (shape {(<object>X).shape})")
        if mode == "circular" and p > n:
            raise ValueError(f"{fn}: circular padding {p} must be at most the input's "
                             f"size {n} on axis {axis} (shape {(<object>X).shape})")
    return g


def pad_forward(x, y, tuple pads, str mode):
    """y = x (..., H, W) padded by pads = (top, bottom, left, right) in mode 'reflect',
    'replicate' or 'circular' (torch's F.pad); y: (..., H + top + bottom,
    W + left + right)."""
    if _is_f32(x, "pad_forward", "x"):
        _pad_forward(<float *>NULL, x, y, pads, mode)
    else:
        _pad_forward(<double *>NULL, x, y, pads, mode)


cdef Py_ssize_t _padded_size(str fn, str name, object a, cnp.ndarray X,
                             fnn_pad_geom *g) except -1:
    """The element count of X padded by g, after checking that `a` (if an array; _buf
    names anything else) has that shape."""
    cdef tuple shape = (<object>X).shape
    cdef Py_ssize_t ho = g.H + g.top + g.bottom, wo = g.W + g.left + g.right
    want = shape[:X.ndim - 2] + (ho, wo)
    if cnp.PyArray_Check(a) and a.shape != want:
        raise ValueError(f"{fn}: {name} must have shape {want}, got {a.shape}")
    return g.planes * ho * wo


cdef int _pad_forward(floating *t, x, y, tuple pads, str mode) except -1:
    cdef str fn = "pad_forward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 2)
    cdef fnn_pad_geom g = _pad_geom(fn, X, pads, mode)
    cdef Py_ssize_t ny = _padded_size(fn, "y", y, X, &g)
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *py = _flt(t, y, fn, "y", ny, _W)
    with nogil:
        fnn_pad_forward(&g, px, py)
    return 0


def pad_backward(gy, gx, tuple pads, str mode):
    """gx (..., H, W) = dL/dx of pad_forward from gy = dL/dy (overwritten)."""
    if _is_f32(gx, "pad_backward", "gx"):
        _pad_backward(<float *>NULL, gy, gx, pads, mode)
    else:
        _pad_backward(<double *>NULL, gy, gx, pads, mode)


cdef int _pad_backward(floating *t, gy, gx, tuple pads, str mode) except -1:
    cdef str fn = "pad_backward"
    cdef cnp.ndarray GX = _arr(gx, fn, "gx", 2)
    cdef fnn_pad_geom g = _pad_geom(fn, GX, pads, mode)
    cdef Py_ssize_t ny = _padded_size(fn, "gy", gy, GX, &g)
    cdef floating *pgy = _flt(t, gy, fn, "gy", ny)
    cdef floating *pgx = _flt(t, gx, fn, "gx", GX.size, _W)
    with nogil:
        fnn_pad_backward(&g, pgy, pgx)
    return 0
