# Activations that are not elementwise maps of one value (csrc/activations.c): PReLU,
# Maxout, Softmax, Gaussian radial basis units, and Add -> ReLU fused.

cdef extern from "binding.h" nogil:
    void fnn_prelu_forward "FNN_FUSED(fnn_prelu_forward)"(
        Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, const floating *x,
        const floating *a, Py_ssize_t nparam, floating *y)
    void fnn_prelu_backward "FNN_FUSED(fnn_prelu_backward)"(
        Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, const floating *x,
        const floating *gy, const floating *a, Py_ssize_t nparam, floating *gx,
        floating *ga, double *scratch)
    void fnn_add_relu "FNN_FUSED(fnn_add_relu)"(
        Py_ssize_t n, const floating *a, const floating *b, floating *y)
    void fnn_maxout_forward "FNN_FUSED(fnn_maxout_forward)"(
        Py_ssize_t rows, Py_ssize_t units, Py_ssize_t pieces, const floating *z,
        floating *y, uint8_t *idx)
    void fnn_maxout_backward "FNN_FUSED(fnn_maxout_backward)"(
        Py_ssize_t rows, Py_ssize_t units, Py_ssize_t pieces, const floating *gy,
        const uint8_t *idx, floating *gz)
    void fnn_softmax_forward "FNN_FUSED(fnn_softmax_forward)"(
        Py_ssize_t rows, Py_ssize_t cols, const floating *x, floating *y)
    void fnn_softmax_backward "FNN_FUSED(fnn_softmax_backward)"(
        Py_ssize_t rows, Py_ssize_t cols, const floating *y, const floating *gy,
        floating *gx)
    void fnn_rbf_forward "FNN_FUSED(fnn_rbf_forward)"(
        Py_ssize_t rows, Py_ssize_t C, const floating *xsq, const floating *csq,
        const floating *width, floating *xc_d2, floating *y)
    void fnn_rbf_backward "FNN_FUSED(fnn_rbf_backward)"(
        Py_ssize_t rows, Py_ssize_t C, const floating *d2, const floating *y,
        const floating *gy, const floating *width, floating *gd2, floating *gsum,
        floating *grow, floating *gwidth)


cdef int _prelu_layout(cnp.ndarray X, object a, str fn, Py_ssize_t *dims) except -1:
    """(outer, C, inner, nparam) of x (N, C, ...) or (N,) and its slopes a (C or 1)."""
    dims[0] = X.shape[0]
    dims[1] = X.shape[1] if X.ndim > 1 else 1
    dims[2] = _trailing(X, 2)
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{fn}: a must be an array of slopes, got {_describe(a)}")
    dims[3] = cnp.PyArray_SIZE(<cnp.ndarray>a)
    if dims[3] != 1 and dims[3] != dims[1]:
        raise ValueError(f"{fn}: a must hold 1 slope or one per channel ({dims[1]}), got "
                         f"{dims[3]}")
    return 0


def prelu_forward(x, a, y):
    """y = x if x > 0 else a_c * x for (N, C, ...) x; a has C entries or one; y: x's
    shape."""
    if _is_f32(x, "prelu_forward", "x"):
        _prelu_forward(<float *>NULL, x, a, y)
    else:
        _prelu_forward(<double *>NULL, x, a, y)


cdef int _prelu_forward(floating *t, x, a, y) except -1:
    cdef str fn = "prelu_forward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 1)
    cdef Py_ssize_t d[4]
    _prelu_layout(X, a, fn, d)
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pa = _flt(t, a, fn, "a", d[3])
    cdef floating *py = _flt_like(t, y, fn, "y", X, "x", _W)
    with nogil:
        fnn_prelu_forward(d[0], d[1], d[2], px, pa, d[3], py)
    return 0


def prelu_backward(x, gy, a, gx, ga, scratch):
    """Input gradient into gx; slope gradient accumulated into ga (if given); scratch:
    float64, COLSUM_SCRATCH_ROWS * channels (needed for (N, C) input with C slopes)."""
    if _is_f32(x, "prelu_backward", "x"):
        _prelu_backward(<float *>NULL, x, gy, a, gx, ga, scratch)
    else:
        _prelu_backward(<double *>NULL, x, gy, a, gx, ga, scratch)


cdef int _prelu_backward(floating *t, x, gy, a, gx, ga, scratch) except -1:
    cdef str fn = "prelu_backward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 1)
    cdef Py_ssize_t d[4]
    _prelu_layout(X, a, fn, d)
    cdef bint column_sums = d[3] > 1 and d[2] == 1
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgy = _flt_like(t, gy, fn, "gy", X, "x")
    cdef floating *pa = _flt(t, a, fn, "a", d[3])
    cdef floating *pgx = _flt_like(t, gx, fn, "gx", X, "x", _W)
    cdef floating *pga = _flt(t, ga, fn, "ga", d[3], _W | _OPT)
    cdef double *pscratch = _f64(scratch, fn, "scratch", _colsum_scratch(d[1]),
                                 _W | _MIN if column_sums else _W | _MIN | _OPT)
    with nogil:
        fnn_prelu_backward(d[0], d[1], d[2], px, pgy, pa, d[3], pgx, pga, pscratch)
    return 0


cdef int _maxout_pieces(Py_ssize_t pieces, str fn) except -1:
    if pieces < 1 or pieces > 256:
        raise ValueError(f"{fn}: pieces must be in [1, 256] (uint8 winners), got {pieces}")
    return 0


def maxout_forward(z, Py_ssize_t pieces, y, idx):
    """y[i, o] = max_p z[i, o * pieces + p] for y (rows, units), z (rows, units *
    pieces); idx (uint8, y's shape) gets the winning p."""
    if _is_f32(y, "maxout_forward", "y"):
        _maxout_forward(<float *>NULL, z, pieces, y, idx)
    else:
        _maxout_forward(<double *>NULL, z, pieces, y, idx)


cdef int _maxout_forward(floating *t, z, Py_ssize_t pieces, y, idx) except -1:
    cdef str fn = "maxout_forward"
    _maxout_pieces(pieces, fn)
    cdef cnp.ndarray Y = _arr(y, fn, "y", 2)
    cdef Py_ssize_t rows = Y.shape[0], units = _trailing(Y, 1)
    cdef floating *pz = _flt(t, z, fn, "z", rows * units * pieces)
    cdef floating *py = _flt(t, y, fn, "y", rows * units, _W)
    _same_shape(idx, Y, fn, "idx", "y")
    cdef uint8_t *pidx = _u8(idx, fn, "idx", rows * units, _W)
    with nogil:
        fnn_maxout_forward(rows, units, pieces, pz, py, pidx)
    return 0


def maxout_backward(gy, idx, Py_ssize_t pieces, gz):
    """gz = gy routed to each unit's winning piece (idx, from maxout_forward), zero
    elsewhere; gz: rows x (units * pieces)."""
    if _is_f32(gy, "maxout_backward", "gy"):
        _maxout_backward(<float *>NULL, gy, idx, pieces, gz)
    else:
        _maxout_backward(<double *>NULL, gy, idx, pieces, gz)


cdef int _maxout_backward(floating *t, gy, idx, Py_ssize_t pieces, gz) except -1:
    cdef str fn = "maxout_backward"
    _maxout_pieces(pieces, fn)
    cdef cnp.ndarray G = _arr(gy, fn, "gy", 2)
    cdef Py_ssize_t rows = G.shape[0], units = _trailing(G, 1), k, n = rows * units
    cdef floating *pgy = _flt(t, gy, fn, "gy", n)
    _same_shape(idx, G, fn, "idx", "gy")
    cdef uint8_t *pidx = _u8(idx, fn, "idx", n)
    cdef floating *pgz = _flt(t, gz, fn, "gz", n * pieces, _W)
    cdef uint8_t worst = 0
    with nogil:
        for k in range(n):  # gz's index comes from idx: no winner beyond the pieces
            worst = pidx[k] if pidx[k] > worst else worst
    if n and worst >= pieces:
        raise ValueError(f"{fn}: idx holds piece {worst}, beyond pieces = {pieces}")
    with nogil:
        fnn_maxout_backward(rows, units, pieces, pgy, pidx, pgz)
    return 0


cdef Py_ssize_t _last_axis(cnp.ndarray X) noexcept:
    return X.shape[X.ndim - 1]


def softmax_forward(x, y):
    """Stable softmax over the last axis (x viewed as (rows, last)); y: x's shape."""
    if _is_f32(x, "softmax_forward", "x"):
        _softmax_forward(<float *>NULL, x, y)
    else:
        _softmax_forward(<double *>NULL, x, y)


cdef int _softmax_forward(floating *t, x, y) except -1:
    cdef str fn = "softmax_forward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 1)
    cdef Py_ssize_t cols = _last_axis(X), rows = X.size // cols if cols else 0
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *py = _flt_like(t, y, fn, "y", X, "x", _W)
    with nogil:
        fnn_softmax_forward(rows, cols, px, py)
    return 0


def softmax_backward(y, gy, gx):
    """gx = y * (gy - sum(gy * y)) over the last axis; gy, gx: y's shape."""
    if _is_f32(y, "softmax_backward", "y"):
        _softmax_backward(<float *>NULL, y, gy, gx)
    else:
        _softmax_backward(<double *>NULL, y, gy, gx)


cdef int _softmax_backward(floating *t, y, gy, gx) except -1:
    cdef str fn = "softmax_backward"
    cdef cnp.ndarray Y = _arr(y, fn, "y", 1)
    cdef Py_ssize_t cols = _last_axis(Y), rows = Y.size // cols if cols else 0
    cdef floating *py = _flt(t, y, fn, "y", Y.size)
    cdef floating *pgy = _flt_like(t, gy, fn, "gy", Y, "y")
    cdef floating *pgx = _flt_like(t, gx, fn, "gx", Y, "y", _W)
    with nogil:
        fnn_softmax_backward(rows, cols, py, pgy, pgx)
    return 0


def rbf_forward(xsq, csq, width, xc_d2, y):
    """xc_d2 (rows, C): x @ centers.T in, squared distances out; y = exp(-d2 / (2
    width^2)) of its shape; xsq: rows, csq and width: C elements."""
    if _is_f32(y, "rbf_forward", "y"):
        _rbf_forward(<float *>NULL, xsq, csq, width, xc_d2, y)
    else:
        _rbf_forward(<double *>NULL, xsq, csq, width, xc_d2, y)


cdef int _rbf_forward(floating *t, xsq, csq, width, xc_d2, y) except -1:
    cdef str fn = "rbf_forward"
    cdef cnp.ndarray Y = _arr(y, fn, "y", 2)
    cdef Py_ssize_t rows = Y.shape[0], C = _trailing(Y, 1)
    cdef floating *pxsq = _flt(t, xsq, fn, "xsq", rows)
    cdef floating *pcsq = _flt(t, csq, fn, "csq", C)
    cdef floating *pw = _flt(t, width, fn, "width", C)
    cdef floating *pd2 = _flt_like(t, xc_d2, fn, "xc_d2", Y, "y", _W)
    cdef floating *py = _flt(t, y, fn, "y", rows * C, _W)
    with nogil:
        fnn_rbf_forward(rows, C, pxsq, pcsq, pw, pd2, py)
    return 0


def rbf_backward(d2, y, gy, width, gd2, gsum, grow, gwidth):
    """gd2 = dL/d(d2); its column sums into gsum (C), row sums into grow (rows); width
    gradient accumulated into gwidth (if given); d2, gy, gd2: y's shape."""
    if _is_f32(y, "rbf_backward", "y"):
        _rbf_backward(<float *>NULL, d2, y, gy, width, gd2, gsum, grow, gwidth)
    else:
        _rbf_backward(<double *>NULL, d2, y, gy, width, gd2, gsum, grow, gwidth)


cdef int _rbf_backward(floating *t, d2, y, gy, width, gd2, gsum, grow, gwidth) except -1:
    cdef str fn = "rbf_backward"
    cdef cnp.ndarray Y = _arr(y, fn, "y", 2)
    cdef Py_ssize_t rows = Y.shape[0], C = _trailing(Y, 1)
    cdef floating *pd2 = _flt_like(t, d2, fn, "d2", Y, "y")
    cdef floating *py = _flt(t, y, fn, "y", rows * C)
    cdef floating *pgy = _flt_like(t, gy, fn, "gy", Y, "y")
    cdef floating *pw = _flt(t, width, fn, "width", C)
    cdef floating *pgd2 = _flt_like(t, gd2, fn, "gd2", Y, "y", _W)
    cdef floating *pgsum = _flt(t, gsum, fn, "gsum", C, _W)
    cdef floating *pgrow = _flt(t, grow, fn, "grow", rows, _W)
    cdef floating *pgw = _flt(t, gwidth, fn, "gwidth", C, _W | _OPT)
    with nogil:
        fnn_rbf_backward(rows, C, pd2, py, pgy, pw, pgd2, pgsum, pgrow, pgw)
    return 0


def add_relu(a, b, y):
    """y = max(a + b, 0) elementwise (NaN passes); a, b, y of one shape and dtype, y
    may be a or b."""
    if _is_f32(a, "add_relu", "a"):
        _add_relu(<float *>NULL, a, b, y)
    else:
        _add_relu(<double *>NULL, a, b, y)


cdef int _add_relu(floating *t, a, b, y) except -1:
    cdef str fn = "add_relu"
    cdef cnp.ndarray A = _arr(a, fn, "a", 0)
    cdef floating *pa = _flt(t, a, fn, "a", A.size)
    cdef floating *pb = _flt_like(t, b, fn, "b", A, "a")
    cdef floating *py = _flt_like(t, y, fn, "y", A, "a", _W)
    with nogil:
        fnn_add_relu(A.size, pa, pb, py)
    return 0
