# Losses (csrc/loss.c): each returns the mean loss and writes its gradient if asked.

cdef extern from "binding.h" nogil:
    double fnn_softmax_xent "FNN_FUSED(fnn_softmax_xent)"(
        Py_ssize_t rows, Py_ssize_t cols, const floating *logits, const int64_t *labels,
        double smoothing, floating *grad, double *row_loss)
    double fnn_mse "FNN_FUSED(fnn_mse)"(
        Py_ssize_t n, const floating *pred, const floating *target, floating *grad)
    double fnn_mae "FNN_FUSED(fnn_mae)"(
        Py_ssize_t n, const floating *pred, const floating *target, floating *grad)
    void fnn_pointwise_loss "FNN_FUSED(fnn_pointwise_loss)"(
        int kind, Py_ssize_t n, const floating *pred, const floating *target, double param,
        const floating *pos_weight, Py_ssize_t pw_len, floating *loss, floating *grad)
    int FNN_LOSS_MSE, FNN_LOSS_L1, FNN_LOSS_HUBER, FNN_LOSS_SMOOTH_L1, FNN_LOSS_BCE_LOGITS
    int FNN_LOSS_COUNT

LOSS_MSE, LOSS_L1, LOSS_HUBER = FNN_LOSS_MSE, FNN_LOSS_L1, FNN_LOSS_HUBER
LOSS_SMOOTH_L1, LOSS_BCE_LOGITS = FNN_LOSS_SMOOTH_L1, FNN_LOSS_BCE_LOGITS


def softmax_xent(logits, labels, double smoothing, grad, row_loss):
    """Mean softmax cross-entropy of (rows, cols) logits and int64 labels in
    [0, cols) (one per row); its gradient into grad (logits' shape, if given);
    row_loss: float64, one per row."""
    if _is_f32(logits, "softmax_xent", "logits"):
        return _softmax_xent(<float *>NULL, logits, labels, smoothing, grad, row_loss)
    return _softmax_xent(<double *>NULL, logits, labels, smoothing, grad, row_loss)


cdef double _softmax_xent(floating *t, logits, labels, double smoothing, grad,
                          row_loss) except? -1:
    cdef str fn = "softmax_xent"
    cdef cnp.ndarray L = _arr(logits, fn, "logits", 2)
    if L.ndim != 2:
        raise ValueError(f"{fn}: logits must be 2-D (rows, classes), got shape "
                         f"{logits.shape}")
    cdef Py_ssize_t rows = L.shape[0], cols = L.shape[1], i, bad = -1
    cdef floating *pl = _flt(t, logits, fn, "logits", rows * cols)
    cdef int64_t *plab = _i64(labels, fn, "labels", rows)
    cdef floating *pg = _flt_like(t, grad, fn, "grad", L, "logits", _W | _OPT)
    cdef double *prow = _f64(row_loss, fn, "row_loss", rows, _W)
    cdef double out
    with nogil:
        for i in range(rows):  # a label indexes its row: one out of range reads elsewhere
            if plab[i] < 0 or plab[i] >= cols:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"{fn}: labels must be in [0, {cols}), got {plab[bad]} at row {bad}")
    with nogil:
        out = fnn_softmax_xent(rows, cols, pl, plab, smoothing, pg, prow)
    return out


def mse(pred, target, grad):
    """Mean squared error; its gradient into grad (if given); target, grad: pred's
    shape."""
    if _is_f32(pred, "mse", "pred"):
        return _pointwise_loss(<float *>NULL, False, pred, target, grad)
    return _pointwise_loss(<double *>NULL, False, pred, target, grad)


def mae(pred, target, grad):
    """Mean absolute error; its gradient into grad (if given); target, grad: pred's
    shape."""
    if _is_f32(pred, "mae", "pred"):
        return _pointwise_loss(<float *>NULL, True, pred, target, grad)
    return _pointwise_loss(<double *>NULL, True, pred, target, grad)


cdef double _pointwise_loss(floating *t, bint absolute, pred, target, grad) except? -1:
    cdef str fn = "mae" if absolute else "mse"
    cdef cnp.ndarray P = _arr(pred, fn, "pred", 0)
    cdef floating *pp = _flt(t, pred, fn, "pred", P.size)
    cdef floating *pt = _flt_like(t, target, fn, "target", P, "pred")
    cdef floating *pg = _flt_like(t, grad, fn, "grad", P, "pred", _W | _OPT)
    cdef double out
    with nogil:
        if absolute:
            out = fnn_mae(P.size, pp, pt, pg)
        else:
            out = fnn_mse(P.size, pp, pt, pg)
    return out


def pointwise_loss(int kind, pred, target, double param, pos_weight, loss, grad):
    """Unreduced elementwise loss (csrc/generic/loss.h, fnn_pointwise_loss):
    loss[k] = l(pred[k], target[k]) and grad[k] = dl/dpred[k]; target, loss, grad:
    pred's shape. pos_weight (BCE only, or None): one weight per entry of pred's last
    axis."""
    if _is_f32(pred, "pointwise_loss", "pred"):
        return _pointwise(<float *>NULL, kind, pred, target, param, pos_weight, loss, grad)
    return _pointwise(<double *>NULL, kind, pred, target, param, pos_weight, loss, grad)


cdef int _pointwise(floating *t, int kind, pred, target, double param, pos_weight, loss,
                    grad) except -1:
    cdef str fn = "pointwise_loss"
    if not 0 <= kind < FNN_LOSS_COUNT:
        raise ValueError(f"{fn}: unknown loss kind {kind}")
    cdef cnp.ndarray P = _arr(pred, fn, "pred", 1)
    cdef Py_ssize_t n = P.size, pw_len = P.shape[P.ndim - 1]
    cdef floating *pp = _flt(t, pred, fn, "pred", n)
    cdef floating *pt = _flt_like(t, target, fn, "target", P, "pred")
    cdef floating *pl = _flt_like(t, loss, fn, "loss", P, "pred", _W)
    cdef floating *pg = _flt_like(t, grad, fn, "grad", P, "pred", _W)
    cdef floating *pw = _flt(t, pos_weight, fn, "pos_weight", pw_len, _OPT)
    if pw_len == 0:
        return 0
    with nogil:
        fnn_pointwise_loss(kind, n, pp, pt, param, pw, pw_len, pl, pg)
    return 0
