# Convolution and pooling kernels (csrc/conv.h): declarations and checked wrappers.
#
# Included by _kernels.pyx. Arrays come in as typed memoryviews of one float type (a
# mix of float32 and float64 raises TypeError) and every shape is checked against the
# geometry before a kernel runs, so a wrong shape or a missing buffer raises ValueError
# instead of reaching memory it should not. 1-D layers pass (N, C, 1, L) views.
from libc.stdint cimport int32_t

cdef extern from "conv.h" nogil:
    ctypedef struct fnn_conv_geom:
        Py_ssize_t N, C, H, W, K, groups, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo
    ctypedef struct fnn_pool_geom:
        Py_ssize_t planes, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo
    Py_ssize_t fnn_conv_scratch(const fnn_conv_geom *g)

    void fnn_conv_forward_f32(const fnn_conv_geom *g, const float *x, const float *w,
                              const float *bias, int act, float alpha, float beta, float *z,
                              float *y, float *scratch)
    void fnn_conv_forward_f64(const fnn_conv_geom *g, const double *x, const double *w,
                              const double *bias, int act, double alpha, double beta,
                              double *z, double *y, double *scratch)
    void fnn_conv_backward_f32(const fnn_conv_geom *g, const float *x, const float *w,
                               int act, float alpha, float beta, const float *z,
                               const float *y, const float *gy, float *gw, float *gbias,
                               float *gx, float *scratch, double *bsum)
    void fnn_conv_backward_f64(const fnn_conv_geom *g, const double *x, const double *w,
                               int act, double alpha, double beta, const double *z,
                               const double *y, const double *gy, double *gw, double *gbias,
                               double *gx, double *scratch, double *bsum)

    void fnn_maxpool_forward_f32(const fnn_pool_geom *g, const float *x, float *y,
                                 int32_t *idx)
    void fnn_maxpool_forward_f64(const fnn_pool_geom *g, const double *x, double *y,
                                 int32_t *idx)
    void fnn_maxpool_backward_f32(const fnn_pool_geom *g, const float *gy,
                                  const int32_t *idx, float *gx)
    void fnn_maxpool_backward_f64(const fnn_pool_geom *g, const double *gy,
                                  const int32_t *idx, double *gx)
    void fnn_avgpool_forward_f32(const fnn_pool_geom *g, int count_include_pad,
                                 Py_ssize_t divisor, const float *x, float *y)
    void fnn_avgpool_forward_f64(const fnn_pool_geom *g, int count_include_pad,
                                 Py_ssize_t divisor, const double *x, double *y)
    void fnn_avgpool_backward_f32(const fnn_pool_geom *g, int count_include_pad,
                                  Py_ssize_t divisor, const float *gy, float *gx)
    void fnn_avgpool_backward_f64(const fnn_pool_geom *g, int count_include_pad,
                                  Py_ssize_t divisor, const double *gy, double *gx)
    void fnn_adaptive_avgpool_forward_f32(const fnn_pool_geom *g, const float *x, float *y)
    void fnn_adaptive_avgpool_forward_f64(const fnn_pool_geom *g, const double *x,
                                          double *y)
    void fnn_adaptive_avgpool_backward_f32(const fnn_pool_geom *g, const float *gy,
                                           float *gx)
    void fnn_adaptive_avgpool_backward_f64(const fnn_pool_geom *g, const double *gy,
                                           double *gx)


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


cdef inline void _check_shape(str where, str what, tuple got, tuple want) except *:
    if got != want:
        raise ValueError(f"{where}: {what} must have shape {want}, got {got}")


cdef inline tuple _shape(floating[:, :, :, ::1] a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3])


cdef inline tuple _cshape(const floating[:, :, :, ::1] a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3])


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


def conv_forward(const floating[:, :, :, ::1] x not None,
                 const floating[:, :, :, ::1] w not None, const floating[::1] bias,
                 int act, double alpha, double beta, floating[:, :, :, ::1] z,
                 floating[:, :, :, ::1] y not None, floating[::1] scratch not None,
                 tuple stride, tuple padding, tuple dilation, Py_ssize_t groups):
    """y = act(conv(x, w) + bias) in NCHW; z (or None) receives conv(x, w) + bias.
    scratch: conv_scratch_size(...) elements."""
    cdef str where = "conv_forward"
    cdef fnn_conv_geom g = _conv_geom(where, _cshape(x), _cshape(w), stride, padding,
                                      dilation, groups)
    cdef tuple out = (g.N, g.K, g.Ho, g.Wo)
    _check_shape(where, "y", _shape(y), out)
    if z is not None:
        _check_shape(where, "z", _shape(z), out)
    if bias is not None and bias.shape[0] != g.K:
        raise ValueError(f"{where}: bias must have {g.K} elements, got {bias.shape[0]}")
    if not 0 <= act < FNN_ACT_COUNT:
        raise ValueError(f"{where}: unknown activation code {act}")
    if scratch.shape[0] < fnn_conv_scratch(&g):
        raise ValueError(f"{where}: scratch needs {fnn_conv_scratch(&g)} elements, got "
                         f"{scratch.shape[0]}")
    if g.N == 0:
        return
    cdef const floating *p_bias = NULL if bias is None else &bias[0]
    cdef floating *p_z = NULL if z is None else &z[0, 0, 0, 0]
    if floating is float:
        with nogil:
            fnn_conv_forward_f32(&g, &x[0, 0, 0, 0], &w[0, 0, 0, 0], p_bias, act,
                                 <float>alpha, <float>beta, p_z, &y[0, 0, 0, 0], &scratch[0])
    else:
        with nogil:
            fnn_conv_forward_f64(&g, &x[0, 0, 0, 0], &w[0, 0, 0, 0], p_bias, act, alpha,
                                 beta, p_z, &y[0, 0, 0, 0], &scratch[0])


def conv_backward(const floating[:, :, :, ::1] x not None,
                  const floating[:, :, :, ::1] w not None, int act, double alpha,
                  double beta, const floating[:, :, :, ::1] z, const floating[:, :, :, ::1] y,
                  const floating[:, :, :, ::1] gy not None, floating[:, :, :, ::1] gw,
                  floating[::1] gbias, floating[:, :, :, ::1] gx,
                  floating[::1] scratch not None, double[::1] bsum, tuple stride,
                  tuple padding, tuple dilation, Py_ssize_t groups):
    """From gy = dL/dy of conv_forward: gw += dL/dw, gbias += dL/dbias, gx = dL/dx
    (each may be None). z is needed for activations whose derivative reads the input,
    y for the others (but the identity). bsum: K float64 scratch (with gbias)."""
    cdef str where = "conv_backward"
    cdef fnn_conv_geom g = _conv_geom(where, _cshape(x), _cshape(w), stride, padding,
                                      dilation, groups)
    cdef tuple out = (g.N, g.K, g.Ho, g.Wo)
    _check_shape(where, "gy", _cshape(gy), out)
    if not 0 <= act < FNN_ACT_COUNT:
        raise ValueError(f"{where}: unknown activation code {act}")
    if act != FNN_ACT_IDENTITY:
        if fnn_act_needs_input(act):
            if z is None:
                raise ValueError(f"{where}: activation {act} needs z")
            _check_shape(where, "z", _cshape(z), out)
        else:
            if y is None:
                raise ValueError(f"{where}: activation {act} needs y")
            _check_shape(where, "y", _cshape(y), out)
    if gw is not None:
        _check_shape(where, "gw", _shape(gw), _cshape(w))
    if gx is not None:
        _check_shape(where, "gx", _shape(gx), _cshape(x))
    if gbias is not None:
        if gbias.shape[0] != g.K:
            raise ValueError(f"{where}: gbias must have {g.K} elements, got {gbias.shape[0]}")
        if bsum is None or bsum.shape[0] < g.K:
            raise ValueError(f"{where}: bsum must have {g.K} elements")
    if scratch.shape[0] < fnn_conv_scratch(&g):
        raise ValueError(f"{where}: scratch needs {fnn_conv_scratch(&g)} elements, got "
                         f"{scratch.shape[0]}")
    if g.N == 0:
        return
    cdef const floating *p_z = NULL if z is None or not fnn_act_needs_input(act) \
        else &z[0, 0, 0, 0]
    cdef const floating *p_y = NULL if y is None or act == FNN_ACT_IDENTITY \
        else &y[0, 0, 0, 0]
    cdef floating *p_gw = NULL if gw is None else &gw[0, 0, 0, 0]
    cdef floating *p_gb = NULL if gbias is None else &gbias[0]
    cdef floating *p_gx = NULL if gx is None else &gx[0, 0, 0, 0]
    cdef double *p_bsum = NULL if gbias is None else &bsum[0]
    if floating is float:
        with nogil:
            fnn_conv_backward_f32(&g, &x[0, 0, 0, 0], &w[0, 0, 0, 0], act, <float>alpha, <float>beta, p_z, p_y,
                                  &gy[0, 0, 0, 0], p_gw, p_gb, p_gx, &scratch[0], p_bsum)
    else:
        with nogil:
            fnn_conv_backward_f64(&g, &x[0, 0, 0, 0], &w[0, 0, 0, 0], act, alpha, beta, p_z, p_y,
                                  &gy[0, 0, 0, 0], p_gw, p_gb, p_gx, &scratch[0], p_bsum)


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


def maxpool_forward(const floating[:, :, :, ::1] x not None, floating[:, :, :, ::1] y not None,
                    int32_t[:, :, :, ::1] idx not None, tuple kernel, tuple stride,
                    tuple padding, tuple dilation, bint ceil_mode):
    """y = max over each window; idx = flat index (h W + w) of the maximum in its plane."""
    cdef fnn_pool_geom g = _pool_geom("maxpool_forward", _cshape(x), _shape(y), kernel,
                                      stride, padding, dilation, ceil_mode)
    _check_shape("maxpool_forward", "idx",
                 (idx.shape[0], idx.shape[1], idx.shape[2], idx.shape[3]), _shape(y))
    if g.planes == 0:
        return
    if floating is float:
        with nogil:
            fnn_maxpool_forward_f32(&g, &x[0, 0, 0, 0], &y[0, 0, 0, 0], &idx[0, 0, 0, 0])
    else:
        with nogil:
            fnn_maxpool_forward_f64(&g, &x[0, 0, 0, 0], &y[0, 0, 0, 0], &idx[0, 0, 0, 0])


def maxpool_backward(const floating[:, :, :, ::1] gy not None,
                     const int32_t[:, :, :, ::1] idx not None,
                     floating[:, :, :, ::1] gx not None, tuple kernel, tuple stride,
                     tuple padding, tuple dilation, bint ceil_mode):
    """gx = gy scattered to the maxima recorded in idx (gx is overwritten)."""
    cdef fnn_pool_geom g = _pool_geom("maxpool_backward", _shape(gx), _cshape(gy), kernel,
                                      stride, padding, dilation, ceil_mode)
    _check_shape("maxpool_backward", "idx",
                 (idx.shape[0], idx.shape[1], idx.shape[2], idx.shape[3]), _cshape(gy))
    if g.planes == 0:
        return
    if floating is float:
        with nogil:
            fnn_maxpool_backward_f32(&g, &gy[0, 0, 0, 0], &idx[0, 0, 0, 0], &gx[0, 0, 0, 0])
    else:
        with nogil:
            fnn_maxpool_backward_f64(&g, &gy[0, 0, 0, 0], &idx[0, 0, 0, 0], &gx[0, 0, 0, 0])


def avgpool_forward(const floating[:, :, :, ::1] x not None, floating[:, :, :, ::1] y not None,
                    tuple kernel, tuple stride, tuple padding, bint ceil_mode,
                    bint count_include_pad, Py_ssize_t divisor=0):
    """y = mean over each window (torch's avg_pool2d; divisor > 0 overrides the count)."""
    cdef fnn_pool_geom g = _pool_geom("avgpool_forward", _cshape(x), _shape(y), kernel,
                                      stride, padding, (1, 1), ceil_mode)
    if g.planes == 0:
        return
    if floating is float:
        with nogil:
            fnn_avgpool_forward_f32(&g, count_include_pad, divisor, &x[0, 0, 0, 0],
                                    &y[0, 0, 0, 0])
    else:
        with nogil:
            fnn_avgpool_forward_f64(&g, count_include_pad, divisor, &x[0, 0, 0, 0],
                                    &y[0, 0, 0, 0])


def avgpool_backward(const floating[:, :, :, ::1] gy not None,
                     floating[:, :, :, ::1] gx not None, tuple kernel, tuple stride,
                     tuple padding, bint ceil_mode, bint count_include_pad,
                     Py_ssize_t divisor=0):
    """gx = dL/dx of avgpool_forward (overwritten)."""
    cdef fnn_pool_geom g = _pool_geom("avgpool_backward", _shape(gx), _cshape(gy), kernel,
                                      stride, padding, (1, 1), ceil_mode)
    if g.planes == 0:
        return
    if floating is float:
        with nogil:
            fnn_avgpool_backward_f32(&g, count_include_pad, divisor, &gy[0, 0, 0, 0],
                                     &gx[0, 0, 0, 0])
    else:
        with nogil:
            fnn_avgpool_backward_f64(&g, count_include_pad, divisor, &gy[0, 0, 0, 0],
                                     &gx[0, 0, 0, 0])


def adaptive_avgpool_forward(const floating[:, :, :, ::1] x not None,
                             floating[:, :, :, ::1] y not None):
    """y (N, C, Ho, Wo) = torch's adaptive_avg_pool2d of x (N, C, H, W)."""
    cdef fnn_pool_geom g = _pool_geom("adaptive_avgpool_forward", _cshape(x), _shape(y), (),
                                      (), (), (), False)
    if g.planes == 0:
        return
    if floating is float:
        with nogil:
            fnn_adaptive_avgpool_forward_f32(&g, &x[0, 0, 0, 0], &y[0, 0, 0, 0])
    else:
        with nogil:
            fnn_adaptive_avgpool_forward_f64(&g, &x[0, 0, 0, 0], &y[0, 0, 0, 0])


def adaptive_avgpool_backward(const floating[:, :, :, ::1] gy not None,
                              floating[:, :, :, ::1] gx not None):
    """gx = dL/dx of adaptive_avgpool_forward (overwritten)."""
    cdef fnn_pool_geom g = _pool_geom("adaptive_avgpool_backward", _shape(gx), _cshape(gy),
                                      (), (), (), (), False)
    if g.planes == 0:
        return
    if floating is float:
        with nogil:
            fnn_adaptive_avgpool_backward_f32(&g, &gy[0, 0, 0, 0], &gx[0, 0, 0, 0])
    else:
        with nogil:
            fnn_adaptive_avgpool_backward_f64(&g, &gy[0, 0, 0, 0], &gx[0, 0, 0, 0])
