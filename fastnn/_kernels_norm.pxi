# Normalisation: batch norm over (N, C, ...) input and batch norm fused with the ReLU and
# dropout after it (csrc/batchnorm.c), row norm: LayerNorm, GroupNorm, InstanceNorm
# (csrc/rownorm.c), weight norm (csrc/weightnorm.c).

cdef extern from "binding.h" nogil:
    void fnn_bn_forward_train "FNN_FUSED(fnn_bn_forward_train)"(
        Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, const floating *x,
        const floating *gamma, const floating *beta, double eps, double momentum,
        floating *running_mean, floating *running_var, floating *y, floating *save_mean,
        floating *save_invstd, double *scratch)
    void fnn_bn_forward_eval "FNN_FUSED(fnn_bn_forward_eval)"(
        Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, const floating *x,
        const floating *gamma, const floating *beta, const floating *mean,
        const floating *var, double eps, floating *y)
    void fnn_bn_backward "FNN_FUSED(fnn_bn_backward)"(
        Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, int batch_stats,
        const floating *x, const floating *gy, const floating *gamma, const floating *mean,
        const floating *invstd, floating *gx, floating *ggamma, floating *gbeta,
        double *scratch)
    void fnn_bn_relu_dropout_train "FNN_FUSED(fnn_bn_relu_dropout_train)"(
        Py_ssize_t N, Py_ssize_t C, const floating *x, const floating *gamma,
        const floating *beta, double eps, double momentum, floating *running_mean,
        floating *running_var, floating *y, floating *save_mean, floating *save_invstd,
        floating *scale, floating *shift, uint8_t *mask, double p, double dscale,
        uint64_t seed, uint64_t counter, uint64_t offset, double *scratch)
    void fnn_bn_relu_dropout_backward "FNN_FUSED(fnn_bn_relu_dropout_backward)"(
        Py_ssize_t N, Py_ssize_t C, const floating *x, const floating *gy,
        const floating *gamma, const floating *mean, const floating *invstd,
        const floating *scale, const floating *shift, const uint8_t *mask, double dscale,
        floating *gx, floating *ggamma, floating *gbeta, double *scratch)
    void fnn_rownorm_forward "FNN_FUSED(fnn_rownorm_forward)"(
        Py_ssize_t R, Py_ssize_t D, Py_ssize_t groups, Py_ssize_t inner, const floating *x,
        const floating *w, const floating *b, double eps, floating *y, floating *mean,
        floating *invstd)
    void fnn_rownorm_backward "FNN_FUSED(fnn_rownorm_backward)"(
        Py_ssize_t R, Py_ssize_t D, Py_ssize_t groups, Py_ssize_t inner, const floating *x,
        const floating *gy, const floating *w, const floating *mean,
        const floating *invstd, floating *gx, floating *gw, floating *gb)
    void fnn_weight_norm_forward "FNN_FUSED(fnn_weight_norm_forward)"(
        Py_ssize_t rows, Py_ssize_t cols, const floating *v, const floating *g,
        floating *w, floating *norms)
    void fnn_weight_norm_backward "FNN_FUSED(fnn_weight_norm_backward)"(
        Py_ssize_t rows, Py_ssize_t cols, const floating *v, const floating *g,
        const floating *norms, const floating *gw, floating *gv, floating *gg)


cdef int _both_or_neither(a, b, str fn, str names) except -1:
    if (a is None) != (b is None):
        raise ValueError(f"{fn}: {names} must be given together (or both None)")
    return 0


cdef int _some_samples(Py_ssize_t count, str fn) except -1:
    if count == 0:
        raise ValueError(f"{fn}: batch statistics need at least one sample, x has none")
    return 0


def bn_forward_train(x, gamma, beta, double eps, double momentum, running_mean,
                     running_var, y, save_mean, save_invstd, scratch):
    """Batch statistics per channel of an (N, C, ...) x, normalise + affine, update of
    the running statistics (if given); gamma, beta, running_*, save_*: C elements
    (gamma, beta, running_* may be None); y: x's shape; scratch: float64,
    COLSUM_SCRATCH_ROWS * 2 * C."""
    if _is_f32(x, "bn_forward_train", "x"):
        _bn_forward_train(<float *>NULL, x, gamma, beta, eps, momentum, running_mean,
                          running_var, y, save_mean, save_invstd, scratch)
    else:
        _bn_forward_train(<double *>NULL, x, gamma, beta, eps, momentum, running_mean,
                          running_var, y, save_mean, save_invstd, scratch)


cdef int _bn_forward_train(floating *t, x, gamma, beta, double eps, double momentum,
                           running_mean, running_var, y, save_mean, save_invstd,
                           scratch) except -1:
    cdef str fn = "bn_forward_train"
    cdef cnp.ndarray X = _arr(x, fn, "x", 2)
    cdef Py_ssize_t outer = X.shape[0], C = X.shape[1], inner = _trailing(X, 2)
    _some_samples(outer * inner, fn)
    _both_or_neither(running_mean, running_var, fn, "running_mean and running_var")
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgamma = _flt(t, gamma, fn, "gamma", C, _OPT)
    cdef floating *pbeta = _flt(t, beta, fn, "beta", C, _OPT)
    cdef floating *prm = _flt(t, running_mean, fn, "running_mean", C, _W | _OPT)
    cdef floating *prv = _flt(t, running_var, fn, "running_var", C, _W | _OPT)
    cdef floating *py = _flt_like(t, y, fn, "y", X, "x", _W)
    cdef floating *psm = _flt(t, save_mean, fn, "save_mean", C, _W)
    cdef floating *psi = _flt(t, save_invstd, fn, "save_invstd", C, _W)
    cdef double *pscratch = _f64(scratch, fn, "scratch", _colsum_scratch(2 * C), _W | _MIN)
    with nogil:
        fnn_bn_forward_train(outer, C, inner, px, pgamma, pbeta, eps, momentum, prm, prv, py,
                             psm, psi, pscratch)
    return 0


def bn_forward_eval(x, gamma, beta, mean, var, double eps, y):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta per channel of an (N, C, ...) x;
    gamma, beta (may be None), mean, var: C elements; y: x's shape."""
    if _is_f32(x, "bn_forward_eval", "x"):
        _bn_forward_eval(<float *>NULL, x, gamma, beta, mean, var, eps, y)
    else:
        _bn_forward_eval(<double *>NULL, x, gamma, beta, mean, var, eps, y)


cdef int _bn_forward_eval(floating *t, x, gamma, beta, mean, var, double eps, y) except -1:
    cdef str fn = "bn_forward_eval"
    cdef cnp.ndarray X = _arr(x, fn, "x", 2)
    cdef Py_ssize_t outer = X.shape[0], C = X.shape[1], inner = _trailing(X, 2)
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgamma = _flt(t, gamma, fn, "gamma", C, _OPT)
    cdef floating *pbeta = _flt(t, beta, fn, "beta", C, _OPT)
    cdef floating *pmean = _flt(t, mean, fn, "mean", C)
    cdef floating *pvar = _flt(t, var, fn, "var", C)
    cdef floating *py = _flt_like(t, y, fn, "y", X, "x", _W)
    with nogil:
        fnn_bn_forward_eval(outer, C, inner, px, pgamma, pbeta, pmean, pvar, eps, py)
    return 0


def bn_backward(bint batch_stats, x, gy, gamma, mean, invstd, gx, ggamma, gbeta, scratch):
    """Input gradient into gx; gamma/beta gradients accumulated (if given); gy, gx:
    x's shape; gamma (may be None), mean, invstd, ggamma, gbeta: C elements; scratch as
    for bn_forward_train."""
    if _is_f32(x, "bn_backward", "x"):
        _bn_backward(<float *>NULL, batch_stats, x, gy, gamma, mean, invstd, gx, ggamma,
                     gbeta, scratch)
    else:
        _bn_backward(<double *>NULL, batch_stats, x, gy, gamma, mean, invstd, gx, ggamma,
                     gbeta, scratch)


cdef int _bn_backward(floating *t, bint batch_stats, x, gy, gamma, mean, invstd, gx, ggamma,
                      gbeta, scratch) except -1:
    cdef str fn = "bn_backward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 2)
    cdef Py_ssize_t outer = X.shape[0], C = X.shape[1], inner = _trailing(X, 2)
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgy = _flt_like(t, gy, fn, "gy", X, "x")
    cdef floating *pgamma = _flt(t, gamma, fn, "gamma", C, _OPT)
    cdef floating *pmean = _flt(t, mean, fn, "mean", C)
    cdef floating *pinvstd = _flt(t, invstd, fn, "invstd", C)
    cdef floating *pgx = _flt_like(t, gx, fn, "gx", X, "x", _W)
    cdef floating *pgg = _flt(t, ggamma, fn, "ggamma", C, _W | _OPT)
    cdef floating *pgb = _flt(t, gbeta, fn, "gbeta", C, _W | _OPT)
    cdef double *pscratch = _f64(scratch, fn, "scratch", _colsum_scratch(2 * C), _W | _MIN)
    with nogil:
        fnn_bn_backward(outer, C, inner, batch_stats, px, pgy, pgamma, pmean, pinvstd, pgx,
                        pgg, pgb, pscratch)
    return 0


def bn_relu_dropout_train(x, gamma, beta, double eps, double momentum, running_mean,
                          running_var, y, save_mean, save_invstd, scale, shift, mask,
                          double p, double dscale, uint64_t seed, uint64_t counter, scratch,
                          uint64_t offset=0):
    """BatchNorm1d (training) -> ReLU -> inverted dropout (mask None: none) on (N, C) x
    in two passes; scale/shift (C each) receive the normalising affine for backward;
    mask: uint8 of x's shape, element i drawn from generator index offset + i (a shard
    of a larger batch); the rest as for bn_forward_train."""
    if _is_f32(x, "bn_relu_dropout_train", "x"):
        _bn_relu_dropout_train(<float *>NULL, x, gamma, beta, eps, momentum, running_mean,
                               running_var, y, save_mean, save_invstd, scale, shift, mask, p,
                               dscale, seed, counter, scratch, offset)
    else:
        _bn_relu_dropout_train(<double *>NULL, x, gamma, beta, eps, momentum, running_mean,
                               running_var, y, save_mean, save_invstd, scale, shift, mask, p,
                               dscale, seed, counter, scratch, offset)


cdef int _fused_bn_input(cnp.ndarray X, str fn, mask) except -1:
    """The fused kernels take (N, C) input; their mask elements are counted in 32 bits."""
    if X.ndim != 2:
        raise ValueError(f"{fn}: x must be 2-D (N, C), got shape {(<object>X).shape}")
    if mask is not None and X.size > _MASK_ELEMENTS_MAX:
        raise ValueError(f"{fn}: dropout masks cover at most 2**32 - 1 elements, got "
                         f"{X.size}")
    _same_shape(mask, X, fn, "mask", "x")
    return 0


cdef int _bn_relu_dropout_train(floating *t, x, gamma, beta, double eps, double momentum,
                                running_mean, running_var, y, save_mean, save_invstd, scale,
                                shift, mask, double p, double dscale, uint64_t seed,
                                uint64_t counter, scratch, uint64_t offset) except -1:
    cdef str fn = "bn_relu_dropout_train"
    cdef cnp.ndarray X = _arr(x, fn, "x", 2)
    _fused_bn_input(X, fn, mask)
    if mask is not None and offset + <uint64_t>X.size > _MASK_ELEMENTS_MAX + 1:
        raise ValueError(f"{fn}: offset {offset} + {X.size} elements exceed the 2**32 "
                         "indices of a dropout mask")
    cdef Py_ssize_t N = X.shape[0], C = X.shape[1]
    _some_samples(N, fn)
    _both_or_neither(running_mean, running_var, fn, "running_mean and running_var")
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgamma = _flt(t, gamma, fn, "gamma", C, _OPT)
    cdef floating *pbeta = _flt(t, beta, fn, "beta", C, _OPT)
    cdef floating *prm = _flt(t, running_mean, fn, "running_mean", C, _W | _OPT)
    cdef floating *prv = _flt(t, running_var, fn, "running_var", C, _W | _OPT)
    cdef floating *py = _flt_like(t, y, fn, "y", X, "x", _W)
    cdef floating *psm = _flt(t, save_mean, fn, "save_mean", C, _W)
    cdef floating *psi = _flt(t, save_invstd, fn, "save_invstd", C, _W)
    cdef floating *pscale = _flt(t, scale, fn, "scale", C, _W)
    cdef floating *pshift = _flt(t, shift, fn, "shift", C, _W)
    cdef uint8_t *pmask = _u8(mask, fn, "mask", X.size, _W | _OPT)
    cdef double *pscratch = _f64(scratch, fn, "scratch", _colsum_scratch(2 * C), _W | _MIN)
    with nogil:
        fnn_bn_relu_dropout_train(N, C, px, pgamma, pbeta, eps, momentum, prm, prv, py, psm,
                                  psi, pscale, pshift, pmask, p, dscale, seed, counter,
                                  offset, pscratch)
    return 0


def bn_relu_dropout_backward(x, gy, gamma, mean, invstd, scale, shift, mask, double dscale,
                             gx, ggamma, gbeta, scratch):
    """Backward of bn_relu_dropout_train: gx, and gamma/beta gradients accumulated."""
    if _is_f32(x, "bn_relu_dropout_backward", "x"):
        _bn_relu_dropout_backward(<float *>NULL, x, gy, gamma, mean, invstd, scale, shift,
                                  mask, dscale, gx, ggamma, gbeta, scratch)
    else:
        _bn_relu_dropout_backward(<double *>NULL, x, gy, gamma, mean, invstd, scale, shift,
                                  mask, dscale, gx, ggamma, gbeta, scratch)


cdef int _bn_relu_dropout_backward(floating *t, x, gy, gamma, mean, invstd, scale, shift,
                                   mask, double dscale, gx, ggamma, gbeta,
                                   scratch) except -1:
    cdef str fn = "bn_relu_dropout_backward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 2)
    _fused_bn_input(X, fn, mask)
    cdef Py_ssize_t N = X.shape[0], C = X.shape[1]
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgy = _flt_like(t, gy, fn, "gy", X, "x")
    cdef floating *pgamma = _flt(t, gamma, fn, "gamma", C, _OPT)
    cdef floating *pmean = _flt(t, mean, fn, "mean", C)
    cdef floating *pinvstd = _flt(t, invstd, fn, "invstd", C)
    cdef floating *pscale = _flt(t, scale, fn, "scale", C)
    cdef floating *pshift = _flt(t, shift, fn, "shift", C)
    cdef uint8_t *pmask = _u8(mask, fn, "mask", X.size, _OPT)
    cdef floating *pgx = _flt_like(t, gx, fn, "gx", X, "x", _W)
    cdef floating *pgg = _flt(t, ggamma, fn, "ggamma", C, _W | _OPT)
    cdef floating *pgb = _flt(t, gbeta, fn, "gbeta", C, _W | _OPT)
    cdef double *pscratch = _f64(scratch, fn, "scratch", _colsum_scratch(2 * C), _W | _MIN)
    with nogil:
        fnn_bn_relu_dropout_backward(N, C, px, pgy, pgamma, pmean, pinvstd, pscale, pshift,
                                     pmask, dscale, pgx, pgg, pgb, pscratch)
    return 0


cdef Py_ssize_t _rownorm_rows(cnp.ndarray X, Py_ssize_t D, Py_ssize_t groups,
                              Py_ssize_t inner, str fn) except -1:
    """Rows of length D in x, after checking the layout's numbers fit together."""
    _positive(D, fn, "D")
    _positive(groups, fn, "groups")
    _positive(inner, fn, "inner")
    if D % inner:
        raise ValueError(f"{fn}: D ({D}) must be a multiple of inner ({inner})")
    if X.size % D:
        raise ValueError(f"{fn}: x's {X.size} elements are not rows of D = {D}")
    return X.size // D


def rownorm_forward(x, Py_ssize_t D, Py_ssize_t groups, Py_ssize_t inner, w, b,
                    double eps, y, mean, invstd):
    """Normalise each of the x.size // D rows of length D; per-channel affine w, b
    (groups * D // inner channels, both or neither); y: x's shape; mean, invstd: one
    per row."""
    if _is_f32(x, "rownorm_forward", "x"):
        _rownorm_forward(<float *>NULL, x, D, groups, inner, w, b, eps, y, mean, invstd)
    else:
        _rownorm_forward(<double *>NULL, x, D, groups, inner, w, b, eps, y, mean, invstd)


cdef int _rownorm_forward(floating *t, x, Py_ssize_t D, Py_ssize_t groups, Py_ssize_t inner,
                          w, b, double eps, y, mean, invstd) except -1:
    cdef str fn = "rownorm_forward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 0)
    cdef Py_ssize_t R = _rownorm_rows(X, D, groups, inner, fn)
    cdef Py_ssize_t channels = groups * (D // inner)
    _both_or_neither(w, b, fn, "w and b")
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pw = _flt(t, w, fn, "w", channels, _OPT)
    cdef floating *pb = _flt(t, b, fn, "b", channels, _OPT)
    cdef floating *py = _flt_like(t, y, fn, "y", X, "x", _W)
    cdef floating *pmean = _flt(t, mean, fn, "mean", R, _W)
    cdef floating *pinvstd = _flt(t, invstd, fn, "invstd", R, _W)
    with nogil:
        fnn_rownorm_forward(R, D, groups, inner, px, pw, pb, eps, py, pmean, pinvstd)
    return 0


def rownorm_backward(x, Py_ssize_t D, Py_ssize_t groups, Py_ssize_t inner, gy, w, mean,
                     invstd, gx, gw, gb):
    """Input gradient into gx (if given); w/b gradients accumulated (if given)."""
    if _is_f32(x, "rownorm_backward", "x"):
        _rownorm_backward(<float *>NULL, x, D, groups, inner, gy, w, mean, invstd, gx, gw,
                          gb)
    else:
        _rownorm_backward(<double *>NULL, x, D, groups, inner, gy, w, mean, invstd, gx, gw,
                          gb)


cdef int _rownorm_backward(floating *t, x, Py_ssize_t D, Py_ssize_t groups, Py_ssize_t inner,
                           gy, w, mean, invstd, gx, gw, gb) except -1:
    cdef str fn = "rownorm_backward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 0)
    cdef Py_ssize_t R = _rownorm_rows(X, D, groups, inner, fn)
    cdef Py_ssize_t channels = groups * (D // inner)
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgy = _flt_like(t, gy, fn, "gy", X, "x")
    cdef floating *pw = _flt(t, w, fn, "w", channels, _OPT)
    cdef floating *pmean = _flt(t, mean, fn, "mean", R)
    cdef floating *pinvstd = _flt(t, invstd, fn, "invstd", R)
    cdef floating *pgx = _flt_like(t, gx, fn, "gx", X, "x", _W | _OPT)
    cdef floating *pgw = _flt(t, gw, fn, "gw", channels, _W | _OPT)
    cdef floating *pgb = _flt(t, gb, fn, "gb", channels, _W | _OPT)
    with nogil:
        fnn_rownorm_backward(R, D, groups, inner, px, pgy, pw, pmean, pinvstd, pgx, pgw, pgb)
    return 0


def weight_norm_forward(v, g, w, norms):
    """w = g * v / |v| over the rows of v (rows, ...); g, norms: one per row (norms gets
    |v|); w: v's shape."""
    if _is_f32(v, "weight_norm_forward", "v"):
        _weight_norm_forward(<float *>NULL, v, g, w, norms)
    else:
        _weight_norm_forward(<double *>NULL, v, g, w, norms)


cdef int _weight_norm_forward(floating *t, v, g, w, norms) except -1:
    cdef str fn = "weight_norm_forward"
    cdef cnp.ndarray V = _arr(v, fn, "v", 1)
    cdef Py_ssize_t rows = V.shape[0], cols = _trailing(V, 1)
    cdef floating *pv = _flt(t, v, fn, "v", V.size)
    cdef floating *pg = _flt(t, g, fn, "g", rows)
    cdef floating *pw = _flt_like(t, w, fn, "w", V, "v", _W)
    cdef floating *pn = _flt(t, norms, fn, "norms", rows, _W)
    with nogil:
        fnn_weight_norm_forward(rows, cols, pv, pg, pw, pn)
    return 0


def weight_norm_backward(v, g, norms, gw, gv, gg):
    """Accumulate the gradients of v and g (each if given) from gw = dL/dw (v's shape)."""
    if _is_f32(v, "weight_norm_backward", "v"):
        _weight_norm_backward(<float *>NULL, v, g, norms, gw, gv, gg)
    else:
        _weight_norm_backward(<double *>NULL, v, g, norms, gw, gv, gg)


cdef int _weight_norm_backward(floating *t, v, g, norms, gw, gv, gg) except -1:
    cdef str fn = "weight_norm_backward"
    cdef cnp.ndarray V = _arr(v, fn, "v", 1)
    cdef Py_ssize_t rows = V.shape[0], cols = _trailing(V, 1)
    cdef floating *pv = _flt(t, v, fn, "v", V.size)
    cdef floating *pg = _flt(t, g, fn, "g", rows)
    cdef floating *pn = _flt(t, norms, fn, "norms", rows)
    cdef floating *pgw = _flt_like(t, gw, fn, "gw", V, "v")
    cdef floating *pgv = _flt_like(t, gv, fn, "gv", V, "v", _W | _OPT)
    cdef floating *pgg = _flt(t, gg, fn, "gg", rows, _W | _OPT)
    with nogil:
        fnn_weight_norm_backward(rows, cols, pv, pg, pn, pgw, pgv, pgg)
    return 0


cdef extern from "binding.h" nogil:
    void fnn_bn_relu_forward_train "FNN_FUSED(fnn_bn_relu_forward_train)"(
        Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, const floating *x,
        const floating *gamma, const floating *beta, double eps, double momentum,
        floating *running_mean, floating *running_var, floating *y, floating *save_mean,
        floating *save_invstd, floating *scale, floating *shift, double *scratch)
    void fnn_bn_relu_backward "FNN_FUSED(fnn_bn_relu_backward)"(
        Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, const floating *x,
        const floating *gy, const floating *gamma, const floating *mean,
        const floating *invstd, const floating *scale, const floating *shift,
        floating *gx, floating *ggamma, floating *gbeta, double *scratch)


def bn_relu_forward_train(x, gamma, beta, double eps, double momentum, running_mean,
                          running_var, y, save_mean, save_invstd, scale, shift, scratch):
    """y = relu(batch norm of x) with batch statistics, for x (N, C, ...) (BatchNorm2d ->
    ReLU in training, one statistics pass and one pass that normalises and rectifies);
    the arguments as for bn_forward_train, and scale, shift (C elements each): the
    affine y = relu(x * scale + shift) the backward needs."""
    if _is_f32(x, "bn_relu_forward_train", "x"):
        _bn_relu_forward_train(<float *>NULL, x, gamma, beta, eps, momentum, running_mean,
                               running_var, y, save_mean, save_invstd, scale, shift, scratch)
    else:
        _bn_relu_forward_train(<double *>NULL, x, gamma, beta, eps, momentum, running_mean,
                               running_var, y, save_mean, save_invstd, scale, shift, scratch)


cdef int _bn_relu_forward_train(floating *t, x, gamma, beta, double eps, double momentum,
                                running_mean, running_var, y, save_mean, save_invstd,
                                scale, shift, scratch) except -1:
    cdef str fn = "bn_relu_forward_train"
    cdef cnp.ndarray X = _arr(x, fn, "x", 2)
    cdef Py_ssize_t outer = X.shape[0], C = X.shape[1], inner = _trailing(X, 2)
    _some_samples(outer * inner, fn)
    _both_or_neither(running_mean, running_var, fn, "running_mean and running_var")
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgamma = _flt(t, gamma, fn, "gamma", C, _OPT)
    cdef floating *pbeta = _flt(t, beta, fn, "beta", C, _OPT)
    cdef floating *prm = _flt(t, running_mean, fn, "running_mean", C, _W | _OPT)
    cdef floating *prv = _flt(t, running_var, fn, "running_var", C, _W | _OPT)
    cdef floating *py = _flt_like(t, y, fn, "y", X, "x", _W)
    cdef floating *psm = _flt(t, save_mean, fn, "save_mean", C, _W)
    cdef floating *psi = _flt(t, save_invstd, fn, "save_invstd", C, _W)
    cdef floating *pscale = _flt(t, scale, fn, "scale", C, _W)
    cdef floating *pshift = _flt(t, shift, fn, "shift", C, _W)
    cdef double *pscratch = _f64(scratch, fn, "scratch", _colsum_scratch(2 * C), _W | _MIN)
    with nogil:
        fnn_bn_relu_forward_train(outer, C, inner, px, pgamma, pbeta, eps, momentum, prm,
                                  prv, py, psm, psi, pscale, pshift, pscratch)
    return 0


def bn_relu_backward(x, gy, gamma, mean, invstd, scale, shift, gx, ggamma, gbeta, scratch):
    """Backward of bn_relu_forward_train: gx = dL/dx from gy = dL/dy, the ReLU's
    derivative taken from x * scale + shift > 0 (scale, shift: as the forward wrote
    them); gamma/beta gradients accumulated (if given); gy, gx: x's shape; scratch as
    for bn_forward_train."""
    if _is_f32(x, "bn_relu_backward", "x"):
        _bn_relu_backward(<float *>NULL, x, gy, gamma, mean, invstd, scale, shift, gx,
                          ggamma, gbeta, scratch)
    else:
        _bn_relu_backward(<double *>NULL, x, gy, gamma, mean, invstd, scale, shift, gx,
                          ggamma, gbeta, scratch)


cdef int _bn_relu_backward(floating *t, x, gy, gamma, mean, invstd, scale, shift, gx,
                           ggamma, gbeta, scratch) except -1:
    cdef str fn = "bn_relu_backward"
    cdef cnp.ndarray X = _arr(x, fn, "x", 2)
    cdef Py_ssize_t outer = X.shape[0], C = X.shape[1], inner = _trailing(X, 2)
    cdef floating *px = _flt(t, x, fn, "x", X.size)
    cdef floating *pgy = _flt_like(t, gy, fn, "gy", X, "x")
    cdef floating *pgamma = _flt(t, gamma, fn, "gamma", C, _OPT)
    cdef floating *pmean = _flt(t, mean, fn, "mean", C)
    cdef floating *pinvstd = _flt(t, invstd, fn, "invstd", C)
    cdef floating *pscale = _flt(t, scale, fn, "scale", C)
    cdef floating *pshift = _flt(t, shift, fn, "shift", C)
    cdef floating *pgx = _flt_like(t, gx, fn, "gx", X, "x", _W)
    cdef floating *pgg = _flt(t, ggamma, fn, "ggamma", C, _W | _OPT)
    cdef floating *pgb = _flt(t, gbeta, fn, "gbeta", C, _W | _OPT)
    cdef double *pscratch = _f64(scratch, fn, "scratch", _colsum_scratch(2 * C), _W | _MIN)
    with nogil:
        fnn_bn_relu_backward(outer, C, inner, px, pgy, pgamma, pmean, pinvstd, pscale, pshift,
                             pgx, pgg, pgb, pscratch)
    return 0
