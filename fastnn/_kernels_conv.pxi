# Convolution and pooling kernels (csrc/conv.h): declarations and checked wrappers.
#
# Included by _kernels.pyx. Every array goes through the shared checks of _check.pxi
# (dtype of the call, native byte order, C-contiguous, writeable where written, exact
# element counts) after its shape has been checked against the geometry, so a wrong
# shape, dtype or layout or a missing buffer raises before a kernel runs. 1-D layers
# pass (N, C, 1, L) views.
from libc.stdint cimport int32_t

cdef extern from "conv.h" nogil:
    ctypedef struct fnn_conv_geom:
        Py_ssize_t N, C, H, W, K, groups, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo
    ctypedef struct fnn_pool_geom:
        Py_ssize_t planes, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo
    Py_ssize_t fnn_conv_scratch(const fnn_conv_geom *g)
    int fnn_conv_uses_winograd(const fnn_conv_geom *g)
    int fnn_conv_winograd_enabled
    int fnn_conv_uses_phase(const fnn_conv_geom *g)
    int fnn_conv_phase_enabled
    int fnn_conv_uses_point(const fnn_conv_geom *g)
    int fnn_conv_point_enabled

    # Convolution and pooling, declared once with the fused type (binding.h's FNN_FUSED
    # names).
    void fnn_conv_forward "FNN_FUSED(fnn_conv_forward)"(
        const fnn_conv_geom *g, const floating *x, const floating *w, const floating *bias,
        int act, floating alpha, floating beta, floating *z, floating *y, floating *scratch)
    void fnn_conv_backward "FNN_FUSED(fnn_conv_backward)"(
        const fnn_conv_geom *g, const floating *x, const floating *w, int act,
        floating alpha, floating beta, const floating *z, const floating *y,
        const floating *gy, floating *gw, floating *gbias, floating *gx, floating *scratch,
        double *bsum)
    void fnn_maxpool_forward "FNN_FUSED(fnn_maxpool_forward)"(
        const fnn_pool_geom *g, const floating *x, floating *y, int32_t *idx)
    void fnn_maxpool_backward "FNN_FUSED(fnn_maxpool_backward)"(
        const fnn_pool_geom *g, const floating *gy, const int32_t *idx, floating *gx)
    void fnn_avgpool_forward "FNN_FUSED(fnn_avgpool_forward)"(
        const fnn_pool_geom *g, int count_include_pad, Py_ssize_t divisor,
        const floating *x, floating *y)
    void fnn_avgpool_backward "FNN_FUSED(fnn_avgpool_backward)"(
        const fnn_pool_geom *g, int count_include_pad, Py_ssize_t divisor,
        const floating *gy, floating *gx)
    void fnn_adaptive_avgpool_forward "FNN_FUSED(fnn_adaptive_avgpool_forward)"(
        const fnn_pool_geom *g, const floating *x, floating *y)
    void fnn_adaptive_avgpool_backward "FNN_FUSED(fnn_adaptive_avgpool_backward)"(
        const fnn_pool_geom *g, const floating *gy, floating *gx)


def conv_output_size(Py_ssize_t n, Py_ssize_t k, Py_ssize_t s, Py_ssize_t p, Py_ssize_t d,
                     bint ceil_mode=False):
    """Output length of a convolution or pooling window sliding over n positions
    (torch's rule; with ceil_mode the last window must start inside the input or the
    left padding)."""
    cdef Py_ssize_t span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    cdef Py_ssize_t out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


cdef fnn_conv_geom _conv_geom(str where, tuple x_shape, tuple w_shape, tuple stride,
                              tuple padding, tuple dilation, Py_ssize_t groups) except *:
    """The geometry of x (N, C, H, W) convolved with w (K, C / groups, kh, kw), checked."""
    cdef fnn_conv_geom g
    g.N, g.C, g.H, g.W = x_shape
    g.K, cg, g.kh, g.kw = w_shape
    g.groups = groups
    g.sh, g.sw = stride
    g.ph, g.pw = padding
    g.dh, g.dw = dilation
    if min(g.N, g.C, g.H, g.W, g.K) < 0 or min(g.C, g.H, g.W, g.K) < 1:
        raise ValueError(f"{where}: empty input {x_shape} or weight {w_shape}")
    if groups < 1 or g.C % groups or g.K % groups or cg * groups != g.C:
        raise ValueError(f"{where}: weight {w_shape} with groups={groups} does not fit "
                         f"input {x_shape}")
    if min(g.sh, g.sw, g.dh, g.dw, g.kh, g.kw) < 1 or min(g.ph, g.pw) < 0:
        raise ValueError(f"{where}: bad stride {stride}, padding {padding}, dilation "
                         f"{dilation} or kernel {w_shape[2:]}")
    g.Ho = conv_output_size(g.H, g.kh, g.sh, g.ph, g.dh)
    g.Wo = conv_output_size(g.W, g.kw, g.sw, g.pw, g.dw)
    if g.Ho < 1 or g.Wo < 1:
        raise ValueError(f"{where}: kernel {w_shape[2:]} (dilation {dilation}) is larger than "
                         f"the padded input {x_shape[2:]} + 2 * {padding}")
    return g


def conv_scratch_size(tuple x_shape, tuple w_shape, tuple stride, tuple padding,
                      tuple dilation, Py_ssize_t groups):
    """Elements of the scratch buffer conv_forward and conv_backward take."""
    cdef fnn_conv_geom g = _conv_geom("conv_scratch_size", x_shape, w_shape, stride,
                                      padding, dilation, groups)
    return fnn_conv_scratch(&g)


def _conv_uses_winograd(tuple x_shape, tuple w_shape, tuple stride, tuple padding,
                        tuple dilation, Py_ssize_t groups):
    """Whether conv_forward and conv_backward run this convolution's forward and dL/dx
    by Winograd's F(2x2, 3x3) or F(4x4, 3x3) (3x3, stride 1, undilated, ungrouped,
    padding <= 1, 16 channels or more in and out, the switch of _set_conv_winograd on)."""
    cdef fnn_conv_geom g = _conv_geom("_conv_uses_winograd", x_shape, w_shape, stride,
                                      padding, dilation, groups)
    return bool(fnn_conv_uses_winograd(&g))


def _set_conv_winograd(bint enabled):
    """Turn Winograd's minimal filtering on (the default) or off for the convolutions
    that fit it (off: the direct path; for measurements and tests); returns the previous
    setting. Takes effect at the next forward: not between a forward and its backward,
    whose scratch it sizes."""
    global fnn_conv_winograd_enabled
    cdef bint before = fnn_conv_winograd_enabled
    fnn_conv_winograd_enabled = enabled
    return before


def _conv_uses_phase(tuple x_shape, tuple w_shape, tuple stride, tuple padding,
                     tuple dilation, Py_ssize_t groups):
    """Whether conv_forward and conv_backward run this convolution by phase planes
    (strided, 8 output channels or more per group, kernels up to 16 and strides up to 8
    per axis, the switch of _set_conv_phase on) rather than im2col columns."""
    cdef fnn_conv_geom g = _conv_geom("_conv_uses_phase", x_shape, w_shape, stride,
                                      padding, dilation, groups)
    return bool(fnn_conv_uses_phase(&g))


def _set_conv_phase(bint enabled):
    """Turn the phase path of strided convolutions on (the default) or off (im2col
    columns; for measurements and tests); returns the previous setting. Like
    _set_conv_winograd, not between a forward and its backward."""
    global fnn_conv_phase_enabled
    cdef bint before = fnn_conv_phase_enabled
    fnn_conv_phase_enabled = enabled
    return before


def _conv_uses_point(tuple x_shape, tuple w_shape, tuple stride, tuple padding,
                     tuple dilation, Py_ssize_t groups):
    """Whether conv_backward runs this convolution by the strided 1x1 path (1x1,
    stride > 1, no padding, ungrouped, 8 samples or more, the switch of _set_conv_point
    on) rather than im2col columns."""
    cdef fnn_conv_geom g = _conv_geom("_conv_uses_point", x_shape, w_shape, stride,
                                      padding, dilation, groups)
    return bool(fnn_conv_uses_point(&g))


def _set_conv_point(bint enabled):
    """Turn the strided 1x1 path on (the default) or off (im2col columns; for
    measurements and tests); returns the previous setting. Like _set_conv_winograd, not
    between a forward and its backward."""
    global fnn_conv_point_enabled
    cdef bint before = fnn_conv_point_enabled
    fnn_conv_point_enabled = enabled
    return before


cdef cnp.ndarray _arr4(object a, str fn, str name):
    """`a` as a 4-D (N, C, H, W) array (TypeError if not an array, ValueError if not 4-D)."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{fn}: {name} must be a float32 or float64 array, got {_describe(a)}")
    if cnp.PyArray_NDIM(<cnp.ndarray>a) != 4:
        raise ValueError(f"{fn}: {name} must be 4-D (N, C, H, W), got shape {a.shape}")
    return <cnp.ndarray>a


cdef tuple _dims4(cnp.ndarray a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3])


cdef int _shape_is(object a, tuple want, str fn, str name) except -1:
    """ValueError if `a` is an array whose shape is not `want` (None and non-arrays are
    left to _buf, which names what they are)."""
    if cnp.PyArray_Check(a) and (<object>a).shape != want:
        raise ValueError(f"{fn}: {name} must have shape {want}, got {(<object>a).shape}")
    return 0


cdef inline floating *_flt_shaped(floating *like, object a, tuple want, str fn, str name,
                                  int flags=0) except? NULL:
    """A float array of the call's dtype and shape `want`."""
    _shape_is(a, want, fn, name)
    cdef Py_ssize_t n = 1
    for d in want:
        n *= <Py_ssize_t>d
    return _flt(like, a, fn, name, n, flags)


cdef int32_t *_idx_shaped(object a, tuple want, str fn, int flags=0) except? NULL:
    """The int32 argmax array of max pooling, of shape `want`."""
    _shape_is(a, want, fn, "idx")
    cdef Py_ssize_t n = want[0] * want[1] * want[2] * want[3]
    return <int32_t *>_buf(a, fn, "idx", cnp.NPY_INT32, n, flags)


def conv_forward(x, w, bias, int act, double alpha, double beta, z, y, scratch,
                 tuple stride, tuple padding, tuple dilation, Py_ssize_t groups):
    """y = act(conv(x, w) + bias) in NCHW; z (or None) receives conv(x, w) + bias;
    bias may be None. scratch: at least conv_scratch_size(...) elements."""
    if _is_f32(x, "conv_forward", "x"):
        _conv_forward(<float *>NULL, x, w, bias, act, alpha, beta, z, y, scratch, stride,
                      padding, dilation, groups)
    else:
        _conv_forward(<double *>NULL, x, w, bias, act, alpha, beta, z, y, scratch, stride,
                      padding, dilation, groups)


cdef int _conv_forward(floating *t, x, w, bias, int act, double alpha, double beta, z, y,
                       scratch, tuple stride, tuple padding, tuple dilation,
                       Py_ssize_t groups) except -1:
    cdef str fn = "conv_forward"
    cdef cnp.ndarray X = _arr4(x, fn, "x"), Wt = _arr4(w, fn, "w")
    cdef fnn_conv_geom g = _conv_geom(fn, _dims4(X), _dims4(Wt), stride, padding,
                                      dilation, groups)
    cdef tuple out = (g.N, g.K, g.Ho, g.Wo)
    _check_act(act, fn)
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pw = _flt(t, w, fn, "w", Wt.size)
    cdef floating *pbias = _flt(t, bias, fn, "bias", g.K, _OPT)
    cdef floating *pz = _flt_shaped(t, z, out, fn, "z", _W | _OPT)
    cdef floating *py = _flt_shaped(t, y, out, fn, "y", _W)
    cdef floating *pscratch = _flt(t, scratch, fn, "scratch", fnn_conv_scratch(&g), _W | _MIN)
    if g.N == 0:
        return 0
    with nogil:
        fnn_conv_forward(&g, px, pw, pbias, act, <floating>alpha, <floating>beta, pz, py,
                         pscratch)
    return 0


def conv_backward(x, w, int act, double alpha, double beta, z, y, gy, gw, gbias, gx,
                  scratch, bsum, tuple stride, tuple padding, tuple dilation,
                  Py_ssize_t groups):
    """From gy = dL/dy of conv_forward: gw += dL/dw, gbias += dL/dbias, gx = dL/dx
    (each may be None). z is needed for activations whose derivative reads the input,
    y for the others (but the identity); either may be None where not needed. bsum:
    K float64 scratch (None without gbias)."""
    if _is_f32(x, "conv_backward", "x"):
        _conv_backward(<float *>NULL, x, w, act, alpha, beta, z, y, gy, gw, gbias, gx,
                       scratch, bsum, stride, padding, dilation, groups)
    else:
        _conv_backward(<double *>NULL, x, w, act, alpha, beta, z, y, gy, gw, gbias, gx,
                       scratch, bsum, stride, padding, dilation, groups)


cdef int _conv_backward(floating *t, x, w, int act, double alpha, double beta, z, y, gy,
                        gw, gbias, gx, scratch, bsum, tuple stride, tuple padding,
                        tuple dilation, Py_ssize_t groups) except -1:
    cdef str fn = "conv_backward"
    cdef cnp.ndarray X = _arr4(x, fn, "x"), Wt = _arr4(w, fn, "w")
    cdef fnn_conv_geom g = _conv_geom(fn, _dims4(X), _dims4(Wt), stride, padding,
                                      dilation, groups)
    cdef tuple out = (g.N, g.K, g.Ho, g.Wo)
    _check_act(act, fn)
    cdef bint needs_z = fnn_act_needs_input(act)
    cdef bint needs_y = act != FNN_ACT_IDENTITY and not needs_z
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pw = _flt(t, w, fn, "w", Wt.size)
    cdef floating *pz = _flt_shaped(t, z, out, fn, "z", 0 if needs_z else _OPT)
    cdef floating *py = _flt_shaped(t, y, out, fn, "y", 0 if needs_y else _OPT)
    cdef floating *pgy = _flt_shaped(t, gy, out, fn, "gy")
    cdef floating *pgw = _flt_shaped(t, gw, _dims4(Wt), fn, "gw", _W | _OPT)
    cdef floating *pgb = _flt(t, gbias, fn, "gbias", g.K, _W | _OPT)
    cdef floating *pgx = _flt_shaped(t, gx, _dims4(X), fn, "gx", _W | _OPT)
    cdef floating *pscratch = _flt(t, scratch, fn, "scratch", fnn_conv_scratch(&g), _W | _MIN)
    cdef double *pbsum = _f64(bsum, fn, "bsum", g.K, _W | (0 if pgb != NULL else _OPT))
    if g.N == 0:
        return 0
    if not needs_z:
        pz = NULL
    if not needs_y:
        py = NULL
    if pgb == NULL:
        pbsum = NULL
    with nogil:
        fnn_conv_backward(&g, px, pw, act, <floating>alpha, <floating>beta, pz, py, pgy, pgw,
                          pgb, pgx, pscratch, pbsum)
    return 0


cdef fnn_pool_geom _pool_geom(str where, tuple x_shape, tuple y_shape, tuple kernel,
                              tuple stride, tuple padding, tuple dilation,
                              bint ceil_mode) except *:
    """The geometry of pooling x (N, C, H, W) into y (N, C, Ho, Wo), checked; an empty
    kernel tuple means adaptive pooling (Ho, Wo taken from y)."""
    cdef fnn_pool_geom g
    N, C, g.H, g.W = x_shape
    g.planes = N * C
    g.Ho, g.Wo = y_shape[2], y_shape[3]
    if y_shape[:2] != x_shape[:2]:
        raise ValueError(f"{where}: output {y_shape} does not match input {x_shape}")
    if g.H < 1 or g.W < 1:
        raise ValueError(f"{where}: empty planes in input {x_shape}")
    if not kernel:
        if g.Ho < 1 or g.Wo < 1:
            raise ValueError(f"{where}: bad sizes {x_shape} -> {y_shape}")
        g.kh = g.kw = g.sh = g.sw = g.dh = g.dw = 1
        g.ph = g.pw = 0
        return g
    g.kh, g.kw = kernel
    g.sh, g.sw = stride
    g.ph, g.pw = padding
    g.dh, g.dw = dilation
    if min(g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) < 1 or min(g.ph, g.pw) < 0:
        raise ValueError(f"{where}: bad kernel {kernel}, stride {stride}, padding {padding} "
                         f"or dilation {dilation}")
    if 2 * g.ph > g.kh or 2 * g.pw > g.kw:
        raise ValueError(f"{where}: padding {padding} must be at most half the kernel "
                         f"{kernel}")
    if g.H * g.W >= 1 << 31:
        raise ValueError(f"{where}: planes of {g.H} x {g.W} are too large")
    want = (conv_output_size(g.H, g.kh, g.sh, g.ph, g.dh, ceil_mode),
            conv_output_size(g.W, g.kw, g.sw, g.pw, g.dw, ceil_mode))
    if want[0] < 1 or want[1] < 1:
        raise ValueError(f"{where}: kernel {kernel} is larger than the padded input "
                         f"{x_shape[2:]}")
    if (g.Ho, g.Wo) != want:
        raise ValueError(f"{where}: output must have spatial shape {want}, got {y_shape[2:]}")
    return g


cdef tuple _pooled(str fn, cnp.ndarray X, fnn_pool_geom *g):
    return (X.shape[0], X.shape[1], g.Ho, g.Wo)


cdef fnn_pool_geom _window_geom(str fn, cnp.ndarray X, tuple kernel, tuple stride,
                                tuple padding, tuple dilation, bint ceil_mode) except *:
    """The geometry of a windowed pooling of X, its output size from the windows."""
    dims = _dims4(X)
    if len(kernel) != 2:
        raise ValueError(f"{fn}: kernel must be a pair, got {kernel!r}")
    out = dims[:2] + tuple(
        conv_output_size(n, k, s, p, d, ceil_mode) if k >= 1 and s >= 1 and d >= 1 else 0
        for n, k, s, p, d in zip(dims[2:], kernel, stride, padding, dilation))
    return _pool_geom(fn, dims, out, kernel, stride, padding, dilation, ceil_mode)


def maxpool_forward(x, y, idx, tuple kernel, tuple stride, tuple padding, tuple dilation,
                    bint ceil_mode):
    """y = max over each window; idx (int32, y's shape) = flat index (h W + w) of the
    maximum in its plane."""
    if _is_f32(x, "maxpool_forward", "x"):
        _maxpool_forward(<float *>NULL, x, y, idx, kernel, stride, padding, dilation,
                         ceil_mode)
    else:
        _maxpool_forward(<double *>NULL, x, y, idx, kernel, stride, padding, dilation,
                         ceil_mode)


cdef int _maxpool_forward(floating *t, x, y, idx, tuple kernel, tuple stride, tuple padding,
                          tuple dilation, bint ceil_mode) except -1:
    cdef str fn = "maxpool_forward"
    cdef cnp.ndarray X = _arr4(x, fn, "x")
    cdef fnn_pool_geom g = _window_geom(fn, X, kernel, stride, padding, dilation, ceil_mode)
    cdef tuple out = _pooled(fn, X, &g)
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *py = _flt_shaped(t, y, out, fn, "y", _W)
    cdef int32_t *pidx = _idx_shaped(idx, out, fn, _W)
    if g.planes == 0:
        return 0
    with nogil:
        fnn_maxpool_forward(&g, px, py, pidx)
    return 0


def maxpool_backward(gy, idx, gx, tuple kernel, tuple stride, tuple padding,
                     tuple dilation, bint ceil_mode):
    """gx = gy scattered to the maxima recorded in idx (gx, the input's shape, is
    overwritten)."""
    if _is_f32(gx, "maxpool_backward", "gx"):
        _maxpool_backward(<float *>NULL, gy, idx, gx, kernel, stride, padding, dilation,
                          ceil_mode)
    else:
        _maxpool_backward(<double *>NULL, gy, idx, gx, kernel, stride, padding, dilation,
                          ceil_mode)


cdef int _maxpool_backward(floating *t, gy, idx, gx, tuple kernel, tuple stride,
                           tuple padding, tuple dilation, bint ceil_mode) except -1:
    cdef str fn = "maxpool_backward"
    cdef cnp.ndarray GX = _arr4(gx, fn, "gx")
    cdef fnn_pool_geom g = _window_geom(fn, GX, kernel, stride, padding, dilation,
                                        ceil_mode)
    cdef tuple out = _pooled(fn, GX, &g)
    cdef floating *pgy = _flt_shaped(t, gy, out, fn, "gy")
    cdef int32_t *pidx = _idx_shaped(idx, out, fn)
    cdef floating *pgx = _flt(t, gx, fn, "gx", GX.size, _W)
    if g.planes == 0:
        return 0
    with nogil:
        fnn_maxpool_backward(&g, pgy, pidx, pgx)
    return 0


def avgpool_forward(x, y, tuple kernel, tuple stride, tuple padding, bint ceil_mode,
                    bint count_include_pad, Py_ssize_t divisor=0):
    """y = mean over each window (torch's avg_pool2d; divisor > 0 overrides the count)."""
    if _is_f32(x, "avgpool_forward", "x"):
        _avgpool(<float *>NULL, True, x, y, kernel, stride, padding, ceil_mode,
                 count_include_pad, divisor)
    else:
        _avgpool(<double *>NULL, True, x, y, kernel, stride, padding, ceil_mode,
                 count_include_pad, divisor)


def avgpool_backward(gy, gx, tuple kernel, tuple stride, tuple padding, bint ceil_mode,
                     bint count_include_pad, Py_ssize_t divisor=0):
    """gx = dL/dx of avgpool_forward (overwritten)."""
    if _is_f32(gx, "avgpool_backward", "gx"):
        _avgpool(<float *>NULL, False, gx, gy, kernel, stride, padding, ceil_mode,
                 count_include_pad, divisor)
    else:
        _avgpool(<double *>NULL, False, gx, gy, kernel, stride, padding, ceil_mode,
                 count_include_pad, divisor)


cdef int _avgpool(floating *t, bint forward, inp, outp, tuple kernel, tuple stride,
                  tuple padding, bint ceil_mode, bint count_include_pad,
                  Py_ssize_t divisor) except -1:
    """Forward (inp = x, outp = y) or backward (inp = gx, outp = gy) of average pooling."""
    cdef str fn = "avgpool_forward" if forward else "avgpool_backward"
    cdef str iname = "x" if forward else "gx", oname = "y" if forward else "gy"
    cdef cnp.ndarray X = _arr4(inp, fn, iname)
    cdef fnn_pool_geom g = _window_geom(fn, X, kernel, stride, padding, (1, 1), ceil_mode)
    cdef tuple out = _pooled(fn, X, &g)
    cdef floating *pin = _flt(t, inp, fn, iname, X.size, 0 if forward else _W)
    cdef floating *pout = _flt_shaped(t, outp, out, fn, oname, _W if forward else 0)
    if g.planes == 0:
        return 0
    with nogil:
        if forward:
            fnn_avgpool_forward(&g, count_include_pad, divisor, pin, pout)
        else:
            fnn_avgpool_backward(&g, count_include_pad, divisor, pout, pin)
    return 0


def adaptive_avgpool_forward(x, y):
    """y (N, C, Ho, Wo) = torch's adaptive_avg_pool2d of x (N, C, H, W)."""
    if _is_f32(x, "adaptive_avgpool_forward", "x"):
        _adaptive_avgpool(<float *>NULL, True, x, y)
    else:
        _adaptive_avgpool(<double *>NULL, True, x, y)


def adaptive_avgpool_backward(gy, gx):
    """gx = dL/dx of adaptive_avgpool_forward (overwritten)."""
    if _is_f32(gx, "adaptive_avgpool_backward", "gx"):
        _adaptive_avgpool(<float *>NULL, False, gx, gy)
    else:
        _adaptive_avgpool(<double *>NULL, False, gx, gy)


cdef int _adaptive_avgpool(floating *t, bint forward, inp, outp) except -1:
    """Forward (inp = x, outp = y) or backward (inp = gx, outp = gy); the output's shape
    gives the output size."""
    cdef str fn = "adaptive_avgpool_forward" if forward else "adaptive_avgpool_backward"
    cdef str iname = "x" if forward else "gx", oname = "y" if forward else "gy"
    cdef cnp.ndarray X = _arr4(inp, fn, iname), Y = _arr4(outp, fn, oname)
    cdef fnn_pool_geom g = _pool_geom(fn, _dims4(X), _dims4(Y), (), (), (), (), False)
    cdef floating *pin = _flt(t, inp, fn, iname, X.size, 0 if forward else _W)
    cdef floating *pout = _flt(t, outp, fn, oname, Y.size, _W if forward else 0)
    if g.planes == 0:
        return 0
    with nogil:
        if forward:
            fnn_adaptive_avgpool_forward(&g, pin, pout)
        else:
            fnn_adaptive_avgpool_backward(&g, pout, pin)
    return 0
