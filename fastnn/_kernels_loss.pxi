# Elementwise losses (csrc/generic/loss.h: fnn_pointwise_loss), included by _kernels.pyx.
# Checked wrapper: typed memoryviews, so a wrong dtype, length or None raises.
from cython cimport floating

cdef extern from "fastnn.h" nogil:
    int FNN_LOSS_MSE, FNN_LOSS_L1, FNN_LOSS_HUBER, FNN_LOSS_SMOOTH_L1, FNN_LOSS_BCE_LOGITS
    int FNN_LOSS_COUNT
    void fnn_pointwise_loss_f32(int kind, Py_ssize_t n, const float *pred,
                                const float *target, double param, const float *pos_weight,
                                Py_ssize_t pw_len, float *loss, float *grad)
    void fnn_pointwise_loss_f64(int kind, Py_ssize_t n, const double *pred,
                                const double *target, double param, const double *pos_weight,
                                Py_ssize_t pw_len, double *loss, double *grad)

LOSS_MSE, LOSS_L1, LOSS_HUBER = FNN_LOSS_MSE, FNN_LOSS_L1, FNN_LOSS_HUBER
LOSS_SMOOTH_L1, LOSS_BCE_LOGITS = FNN_LOSS_SMOOTH_L1, FNN_LOSS_BCE_LOGITS


def pointwise_loss(int kind, const floating[::1] pred not None,
                   const floating[::1] target not None, double param,
                   const floating[::1] pos_weight, floating[::1] loss not None,
                   floating[::1] grad not None):
    """Unreduced elementwise loss of flat pred/target: loss[k] = l(pred[k], target[k]) and
    grad[k] = dl/dpred[k]. pos_weight (BCE only, or None) repeats along the elements."""
    cdef Py_ssize_t n = pred.shape[0], pw_len = 0
    cdef const floating *pw = NULL
    if not 0 <= kind < FNN_LOSS_COUNT:
        raise ValueError(f"pointwise_loss: unknown loss kind {kind}")
    if target.shape[0] != n or loss.shape[0] != n or grad.shape[0] != n:
        raise ValueError(f"pointwise_loss: lengths differ (pred {n}, target "
                         f"{target.shape[0]}, loss {loss.shape[0]}, grad {grad.shape[0]})")
    if pos_weight is not None:
        pw_len = pos_weight.shape[0]
        if pw_len == 0 or n % pw_len:
            raise ValueError(f"pointwise_loss: {pw_len} positive weights do not tile {n} "
                             "elements")
        pw = &pos_weight[0]
    if n == 0:
        return
    if floating is float:
        with nogil:
            fnn_pointwise_loss_f32(kind, n, &pred[0], &target[0], param, pw, pw_len,
                                   &loss[0], &grad[0])
    else:
        with nogil:
            fnn_pointwise_loss_f64(kind, n, &pred[0], &target[0], param, pw, pw_len,
                                   &loss[0], &grad[0])
