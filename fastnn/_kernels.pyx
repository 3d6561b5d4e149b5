# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The one binding layer between fastnn's Python modules and its C kernels (csrc/).

Every function takes NumPy arrays that the Python layer has already validated
(C-contiguous, one float dtype, consistent shapes), picks the float or double kernel
from the dtype, passes raw pointers and releases the GIL. It checks nothing else:
callers own shapes. `None` stands for an optional buffer (a NULL pointer in C).
"""
cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from scipy.linalg.cython_blas cimport sgemm, dgemm

cnp.import_array()

cdef extern from "fastnn.h" nogil:
    int FNN_ACT_IDENTITY, FNN_ACT_RELU, FNN_ACT_LEAKY_RELU, FNN_ACT_SIGMOID, FNN_ACT_TANH
    int FNN_PAR_MIN
    int fnn_act_needs_input(int act)
    void fnn_set_num_threads(int n)
    int fnn_get_num_threads()
    uint32_t fnn_random_bits(uint64_t seed, uint64_t counter, uint64_t index)

    void fnn_bias_act_f32(int act, float alpha, Py_ssize_t rows, Py_ssize_t cols,
                          const float *bias, float *z, float *y)
    void fnn_bias_act_f64(int act, double alpha, Py_ssize_t rows, Py_ssize_t cols,
                          const double *bias, double *z, double *y)
    void fnn_act_backward_f32(int act, float alpha, Py_ssize_t rows, Py_ssize_t cols,
                              const float *z, const float *y, const float *gy, float *gz,
                              float *gbias)
    void fnn_act_backward_f64(int act, double alpha, Py_ssize_t rows, Py_ssize_t cols,
                              const double *z, const double *y, const double *gy,
                              double *gz, double *gbias)

    void fnn_bn_forward_train_f32(Py_ssize_t rows, Py_ssize_t cols, const float *x,
                                  const float *gamma, const float *beta, double eps,
                                  double momentum, float *running_mean, float *running_var,
                                  float *y, float *save_mean, float *save_invstd)
    void fnn_bn_forward_train_f64(Py_ssize_t rows, Py_ssize_t cols, const double *x,
                                  const double *gamma, const double *beta, double eps,
                                  double momentum, double *running_mean,
                                  double *running_var, double *y, double *save_mean,
                                  double *save_invstd)
    void fnn_bn_forward_eval_f32(Py_ssize_t rows, Py_ssize_t cols, const float *x,
                                 const float *gamma, const float *beta, const float *mean,
                                 const float *var, double eps, float *y)
    void fnn_bn_forward_eval_f64(Py_ssize_t rows, Py_ssize_t cols, const double *x,
                                 const double *gamma, const double *beta,
                                 const double *mean, const double *var, double eps,
                                 double *y)
    void fnn_bn_backward_f32(Py_ssize_t rows, Py_ssize_t cols, int batch_stats,
                             const float *x, const float *gy, const float *gamma,
                             const float *mean, const float *invstd, float *gx,
                             float *ggamma, float *gbeta)
    void fnn_bn_backward_f64(Py_ssize_t rows, Py_ssize_t cols, int batch_stats,
                             const double *x, const double *gy, const double *gamma,
                             const double *mean, const double *invstd, double *gx,
                             double *ggamma, double *gbeta)

    void fnn_dropout_forward_f32(Py_ssize_t n, const float *x, float *y, uint8_t *mask,
                                 double p, uint64_t seed, uint64_t counter)
    void fnn_dropout_forward_f64(Py_ssize_t n, const double *x, double *y, uint8_t *mask,
                                 double p, uint64_t seed, uint64_t counter)
    void fnn_dropout_backward_f32(Py_ssize_t n, const float *gy, const uint8_t *mask,
                                  double p, float *gx)
    void fnn_dropout_backward_f64(Py_ssize_t n, const double *gy, const uint8_t *mask,
                                  double p, double *gx)

    double fnn_softmax_xent_f32(Py_ssize_t rows, Py_ssize_t cols, const float *logits,
                                const int64_t *labels, double smoothing, float *grad,
                                double *row_loss)
    double fnn_softmax_xent_f64(Py_ssize_t rows, Py_ssize_t cols, const double *logits,
                                const int64_t *labels, double smoothing, double *grad,
                                double *row_loss)
    double fnn_mse_f32(Py_ssize_t n, const float *pred, const float *target, float *grad)
    double fnn_mse_f64(Py_ssize_t n, const double *pred, const double *target, double *grad)
    double fnn_mae_f32(Py_ssize_t n, const float *pred, const float *target, float *grad)
    double fnn_mae_f64(Py_ssize_t n, const double *pred, const double *target, double *grad)

    void fnn_sgd_step_f32(Py_ssize_t n, float *param, const float *grad, float *buf,
                          double lr, double momentum, double dampening,
                          double weight_decay, int nesterov, int first_step)
    void fnn_sgd_step_f64(Py_ssize_t n, double *param, const double *grad, double *buf,
                          double lr, double momentum, double dampening,
                          double weight_decay, int nesterov, int first_step)
    void fnn_adam_step_f32(Py_ssize_t n, float *param, const float *grad, float *exp_avg,
                           float *exp_avg_sq, float *max_exp_avg_sq, double lr,
                           double beta1, double beta2, double eps, double weight_decay,
                           int decoupled, double bias_correction1,
                           double bias_correction2_sqrt)
    void fnn_adam_step_f64(Py_ssize_t n, double *param, const double *grad,
                           double *exp_avg, double *exp_avg_sq, double *max_exp_avg_sq,
                           double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled, double bias_correction1,
                           double bias_correction2_sqrt)

    void fnn_adagrad_step_f32(Py_ssize_t n, float *param, const float *grad,
                              float *state_sum, double clr, double weight_decay, double eps)
    void fnn_adagrad_step_f64(Py_ssize_t n, double *param, const double *grad,
                              double *state_sum, double clr, double weight_decay,
                              double eps)
    void fnn_rmsprop_step_f32(Py_ssize_t n, float *param, const float *grad,
                              float *square_avg, float *grad_avg, float *momentum_buffer,
                              double lr, double alpha, double eps, double weight_decay,
                              double momentum)
    void fnn_rmsprop_step_f64(Py_ssize_t n, double *param, const double *grad,
                              double *square_avg, double *grad_avg,
                              double *momentum_buffer, double lr, double alpha, double eps,
                              double weight_decay, double momentum)
    void fnn_adadelta_step_f32(Py_ssize_t n, float *param, const float *grad,
                               float *square_avg, float *acc_delta, double lr, double rho,
                               double eps, double weight_decay)
    void fnn_adadelta_step_f64(Py_ssize_t n, double *param, const double *grad,
                               double *square_avg, double *acc_delta, double lr,
                               double rho, double eps, double weight_decay)
    void fnn_adamax_step_f32(Py_ssize_t n, float *param, const float *grad, float *exp_avg,
                             float *exp_inf, double clr, double beta1, double beta2,
                             double eps, double weight_decay)
    void fnn_adamax_step_f64(Py_ssize_t n, double *param, const double *grad,
                             double *exp_avg, double *exp_inf, double clr, double beta1,
                             double beta2, double eps, double weight_decay)
    void fnn_nadam_step_f32(Py_ssize_t n, float *param, const float *grad, float *exp_avg,
                            float *exp_avg_sq, double lr, double beta1, double beta2,
                            double eps, double weight_decay, int decoupled,
                            double bias_correction2, double coef_grad, double coef_avg)
    void fnn_nadam_step_f64(Py_ssize_t n, double *param, const double *grad,
                            double *exp_avg, double *exp_avg_sq, double lr, double beta1,
                            double beta2, double eps, double weight_decay, int decoupled,
                            double bias_correction2, double coef_grad, double coef_avg)
    double fnn_sumsq_f32(Py_ssize_t n, const float *x)
    double fnn_sumsq_f64(Py_ssize_t n, const double *x)
    void fnn_scale_f32(Py_ssize_t n, float *x, double s)
    void fnn_scale_f64(Py_ssize_t n, double *x, double s)

ACT_IDENTITY = FNN_ACT_IDENTITY
ACT_RELU = FNN_ACT_RELU
ACT_LEAKY_RELU = FNN_ACT_LEAKY_RELU
ACT_SIGMOID = FNN_ACT_SIGMOID
ACT_TANH = FNN_ACT_TANH
PARALLEL_MIN_ELEMENTS = FNN_PAR_MIN


cdef inline void *ptr(object a):
    """Data pointer of an ndarray, NULL for None."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline bint is_f32(cnp.ndarray a) except -1:
    """True for float32, False for float64; anything else is a caller bug."""
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32:
        return True
    if t == cnp.NPY_FLOAT64:
        return False
    raise TypeError(f"fastnn kernels take float32 or float64 arrays, got {a.dtype}")


def act_needs_input(int act):
    """Whether the activation's derivative needs its input (else its output suffices)."""
    return bool(fnn_act_needs_input(act))


def set_num_threads(int n):
    fnn_set_num_threads(n)


def get_num_threads():
    return fnn_get_num_threads()


def random_bits(uint64_t seed, uint64_t counter, cnp.ndarray[uint32_t, ndim=1] out):
    """out[k] = the 32 dropout bits of element k for (seed, counter)."""
    cdef Py_ssize_t k
    with nogil:
        for k in range(out.shape[0]):
            out[k] = fnn_random_bits(seed, counter, k)


def gemm(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a, bint trans_b,
         double alpha=1.0, double beta=0.0):
    """C := alpha * op(A) @ op(B) + beta * C for C-contiguous 2-D A, B, C.

    BLAS is column-major, and a row-major matrix is the column-major view of its
    transpose, so C^T = op(B)^T op(A)^T is computed by swapping the operands."""
    cdef void *p_b = ptr(b)
    cdef void *p_a = ptr(a)
    cdef void *p_c = ptr(c)
    cdef int m = <int>c.shape[0], n = <int>c.shape[1]
    cdef int k = <int>(a.shape[0] if trans_a else a.shape[1])
    cdef int lda = <int>max(1, a.shape[1]), ldb = <int>max(1, b.shape[1])
    cdef int ldc = <int>max(1, n)
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef float fa = alpha, fb = beta
    if is_f32(c):
        with nogil:
            sgemm(&tb, &ta, &n, &m, &k, &fa, <float*>p_b, &ldb, <float*>p_a, &lda,
                  &fb, <float*>p_c, &ldc)
    else:
        with nogil:
            dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>p_b, &ldb, <double*>p_a,
                  &lda, &beta, <double*>p_c, &ldc)


def bias_act(int act, double alpha, bias, cnp.ndarray z, cnp.ndarray y):
    """y = act(z + bias) over a (rows, cols) z; z += bias in place unless y is z."""
    cdef void *p_bias = ptr(bias)
    cdef void *p_z = ptr(z)
    cdef void *p_y = ptr(y)
    cdef Py_ssize_t rows = z.shape[0], cols = z.size // rows if rows else 0
    if is_f32(z):
        with nogil:
            fnn_bias_act_f32(act, <float>alpha, rows, cols, <float*>p_bias,
                             <float*>p_z, <float*>p_y)
    else:
        with nogil:
            fnn_bias_act_f64(act, alpha, rows, cols, <double*>p_bias, <double*>p_z,
                             <double*>p_y)


def act_backward(int act, double alpha, z, y, cnp.ndarray gy, cnp.ndarray gz, gbias):
    """gz = gy * act'(z, y); gbias += column sums of gz (if given)."""
    cdef void *p_z = ptr(z)
    cdef void *p_y = ptr(y)
    cdef void *p_gy = ptr(gy)
    cdef void *p_gz = ptr(gz)
    cdef void *p_gbias = ptr(gbias)
    cdef Py_ssize_t rows = gy.shape[0], cols = gy.size // rows if rows else 0
    if is_f32(gy):
        with nogil:
            fnn_act_backward_f32(act, <float>alpha, rows, cols, <float*>p_z,
                                 <float*>p_y, <float*>p_gy, <float*>p_gz,
                                 <float*>p_gbias)
    else:
        with nogil:
            fnn_act_backward_f64(act, alpha, rows, cols, <double*>p_z, <double*>p_y,
                                 <double*>p_gy, <double*>p_gz, <double*>p_gbias)


def bn_forward_train(cnp.ndarray x, gamma, beta, double eps, double momentum,
                     running_mean, running_var, cnp.ndarray y, cnp.ndarray save_mean,
                     cnp.ndarray save_invstd):
    """Batch statistics, normalise + affine, running-statistics update (if given)."""
    cdef void *p_x = ptr(x)
    cdef void *p_gamma = ptr(gamma)
    cdef void *p_beta = ptr(beta)
    cdef void *p_running_mean = ptr(running_mean)
    cdef void *p_running_var = ptr(running_var)
    cdef void *p_y = ptr(y)
    cdef void *p_save_mean = ptr(save_mean)
    cdef void *p_save_invstd = ptr(save_invstd)
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1]
    if is_f32(x):
        with nogil:
            fnn_bn_forward_train_f32(rows, cols, <float*>p_x, <float*>p_gamma,
                                     <float*>p_beta, eps, momentum,
                                     <float*>p_running_mean, <float*>p_running_var,
                                     <float*>p_y, <float*>p_save_mean,
                                     <float*>p_save_invstd)
    else:
        with nogil:
            fnn_bn_forward_train_f64(rows, cols, <double*>p_x, <double*>p_gamma,
                                     <double*>p_beta, eps, momentum,
                                     <double*>p_running_mean,
                                     <double*>p_running_var, <double*>p_y,
                                     <double*>p_save_mean, <double*>p_save_invstd)


def bn_forward_eval(cnp.ndarray x, gamma, beta, cnp.ndarray mean, cnp.ndarray var,
                    double eps, cnp.ndarray y):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta."""
    cdef void *p_x = ptr(x)
    cdef void *p_gamma = ptr(gamma)
    cdef void *p_beta = ptr(beta)
    cdef void *p_mean = ptr(mean)
    cdef void *p_var = ptr(var)
    cdef void *p_y = ptr(y)
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1]
    if is_f32(x):
        with nogil:
            fnn_bn_forward_eval_f32(rows, cols, <float*>p_x, <float*>p_gamma,
                                    <float*>p_beta, <float*>p_mean,
                                    <float*>p_var, eps, <float*>p_y)
    else:
        with nogil:
            fnn_bn_forward_eval_f64(rows, cols, <double*>p_x, <double*>p_gamma,
                                    <double*>p_beta, <double*>p_mean,
                                    <double*>p_var, eps, <double*>p_y)


def bn_backward(bint batch_stats, cnp.ndarray x, cnp.ndarray gy, gamma,
                cnp.ndarray mean, cnp.ndarray invstd, cnp.ndarray gx, ggamma, gbeta):
    """Input gradient into gx; gamma/beta gradients accumulated (if given)."""
    cdef void *p_x = ptr(x)
    cdef void *p_gy = ptr(gy)
    cdef void *p_gamma = ptr(gamma)
    cdef void *p_mean = ptr(mean)
    cdef void *p_invstd = ptr(invstd)
    cdef void *p_gx = ptr(gx)
    cdef void *p_ggamma = ptr(ggamma)
    cdef void *p_gbeta = ptr(gbeta)
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1]
    if is_f32(x):
        with nogil:
            fnn_bn_backward_f32(rows, cols, batch_stats, <float*>p_x, <float*>p_gy,
                                <float*>p_gamma, <float*>p_mean,
                                <float*>p_invstd, <float*>p_gx, <float*>p_ggamma,
                                <float*>p_gbeta)
    else:
        with nogil:
            fnn_bn_backward_f64(rows, cols, batch_stats, <double*>p_x,
                                <double*>p_gy, <double*>p_gamma, <double*>p_mean,
                                <double*>p_invstd, <double*>p_gx,
                                <double*>p_ggamma, <double*>p_gbeta)


def dropout_forward(cnp.ndarray x, cnp.ndarray y, cnp.ndarray mask, double p,
                    uint64_t seed, uint64_t counter):
    """y = x * mask / (1 - p), mask drawn from (seed, counter); x.size < 2**32."""
    cdef void *p_x = ptr(x)
    cdef void *p_y = ptr(y)
    cdef void *p_mask = ptr(mask)
    cdef Py_ssize_t n = x.size
    if is_f32(x):
        with nogil:
            fnn_dropout_forward_f32(n, <float*>p_x, <float*>p_y, <uint8_t*>p_mask,
                                    p, seed, counter)
    else:
        with nogil:
            fnn_dropout_forward_f64(n, <double*>p_x, <double*>p_y,
                                    <uint8_t*>p_mask, p, seed, counter)


def dropout_backward(cnp.ndarray gy, cnp.ndarray mask, double p, cnp.ndarray gx):
    """gx = gy * mask / (1 - p)."""
    cdef void *p_gy = ptr(gy)
    cdef void *p_mask = ptr(mask)
    cdef void *p_gx = ptr(gx)
    cdef Py_ssize_t n = gy.size
    if is_f32(gy):
        with nogil:
            fnn_dropout_backward_f32(n, <float*>p_gy, <uint8_t*>p_mask, p,
                                     <float*>p_gx)
    else:
        with nogil:
            fnn_dropout_backward_f64(n, <double*>p_gy, <uint8_t*>p_mask, p,
                                     <double*>p_gx)


def softmax_xent(cnp.ndarray logits, cnp.ndarray labels, double smoothing, grad,
                 cnp.ndarray row_loss):
    """Mean softmax cross-entropy of int64 labels; its gradient into grad (if given)."""
    cdef void *p_logits = ptr(logits)
    cdef void *p_labels = ptr(labels)
    cdef void *p_grad = ptr(grad)
    cdef void *p_row_loss = ptr(row_loss)
    cdef Py_ssize_t rows = logits.shape[0], cols = logits.shape[1]
    cdef double out
    if is_f32(logits):
        with nogil:
            out = fnn_softmax_xent_f32(rows, cols, <float*>p_logits,
                                       <int64_t*>p_labels, smoothing, <float*>p_grad,
                                       <double*>p_row_loss)
    else:
        with nogil:
            out = fnn_softmax_xent_f64(rows, cols, <double*>p_logits,
                                       <int64_t*>p_labels, smoothing,
                                       <double*>p_grad, <double*>p_row_loss)
    return out


def mse(cnp.ndarray pred, cnp.ndarray target, grad):
    """Mean squared error; its gradient into grad (if given)."""
    cdef void *p_pred = ptr(pred)
    cdef void *p_target = ptr(target)
    cdef void *p_grad = ptr(grad)
    cdef Py_ssize_t n = pred.size
    cdef double out
    if is_f32(pred):
        with nogil:
            out = fnn_mse_f32(n, <float*>p_pred, <float*>p_target, <float*>p_grad)
    else:
        with nogil:
            out = fnn_mse_f64(n, <double*>p_pred, <double*>p_target,
                              <double*>p_grad)
    return out


def mae(cnp.ndarray pred, cnp.ndarray target, grad):
    """Mean absolute error; its gradient into grad (if given)."""
    cdef void *p_pred = ptr(pred)
    cdef void *p_target = ptr(target)
    cdef void *p_grad = ptr(grad)
    cdef Py_ssize_t n = pred.size
    cdef double out
    if is_f32(pred):
        with nogil:
            out = fnn_mae_f32(n, <float*>p_pred, <float*>p_target, <float*>p_grad)
    else:
        with nogil:
            out = fnn_mae_f64(n, <double*>p_pred, <double*>p_target,
                              <double*>p_grad)
    return out


def sgd_step(cnp.ndarray param, cnp.ndarray grad, buf, double lr, double momentum,
             double dampening, double weight_decay, bint nesterov, bint first_step):
    """One SGD update over flat buffers (buf is None without momentum)."""
    cdef void *p_param = ptr(param)
    cdef void *p_grad = ptr(grad)
    cdef void *p_buf = ptr(buf)
    cdef Py_ssize_t n = param.size
    if is_f32(param):
        with nogil:
            fnn_sgd_step_f32(n, <float*>p_param, <float*>p_grad, <float*>p_buf,
                             lr, momentum, dampening, weight_decay, nesterov, first_step)
    else:
        with nogil:
            fnn_sgd_step_f64(n, <double*>p_param, <double*>p_grad, <double*>p_buf,
                             lr, momentum, dampening, weight_decay, nesterov, first_step)


def adam_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray exp_avg,
              cnp.ndarray exp_avg_sq, max_exp_avg_sq, double lr, double beta1,
              double beta2, double eps, double weight_decay, bint decoupled,
              double bias_correction1, double bias_correction2_sqrt):
    """One Adam/AdamW update over flat buffers (max_exp_avg_sq None without amsgrad)."""
    cdef void *p_param = ptr(param)
    cdef void *p_grad = ptr(grad)
    cdef void *p_exp_avg = ptr(exp_avg)
    cdef void *p_exp_avg_sq = ptr(exp_avg_sq)
    cdef void *p_max_exp_avg_sq = ptr(max_exp_avg_sq)
    cdef Py_ssize_t n = param.size
    if is_f32(param):
        with nogil:
            fnn_adam_step_f32(n, <float*>p_param, <float*>p_grad,
                              <float*>p_exp_avg, <float*>p_exp_avg_sq,
                              <float*>p_max_exp_avg_sq, lr, beta1, beta2, eps,
                              weight_decay, decoupled, bias_correction1,
                              bias_correction2_sqrt)
    else:
        with nogil:
            fnn_adam_step_f64(n, <double*>p_param, <double*>p_grad,
                              <double*>p_exp_avg, <double*>p_exp_avg_sq,
                              <double*>p_max_exp_avg_sq, lr, beta1, beta2, eps,
                              weight_decay, decoupled, bias_correction1,
                              bias_correction2_sqrt)


def adagrad_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray state_sum, double clr,
                 double weight_decay, double eps):
    """One Adagrad update over flat buffers (clr: the decayed learning rate)."""
    cdef Py_ssize_t n = param.size
    cdef void *p_param = ptr(param)
    cdef void *p_grad = ptr(grad)
    cdef void *p_sum = ptr(state_sum)
    if is_f32(param):
        with nogil:
            fnn_adagrad_step_f32(n, <float*>p_param, <float*>p_grad, <float*>p_sum, clr,
                                 weight_decay, eps)
    else:
        with nogil:
            fnn_adagrad_step_f64(n, <double*>p_param, <double*>p_grad, <double*>p_sum, clr,
                                 weight_decay, eps)


def rmsprop_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray square_avg, grad_avg,
                 momentum_buffer, double lr, double alpha, double eps, double weight_decay,
                 double momentum):
    """One RMSprop update (grad_avg None unless centered, momentum_buffer None unless
    momentum > 0)."""
    cdef Py_ssize_t n = param.size
    cdef void *p_param = ptr(param)
    cdef void *p_grad = ptr(grad)
    cdef void *p_sq = ptr(square_avg)
    cdef void *p_ga = ptr(grad_avg)
    cdef void *p_buf = ptr(momentum_buffer)
    if is_f32(param):
        with nogil:
            fnn_rmsprop_step_f32(n, <float*>p_param, <float*>p_grad, <float*>p_sq,
                                 <float*>p_ga, <float*>p_buf, lr, alpha, eps, weight_decay,
                                 momentum)
    else:
        with nogil:
            fnn_rmsprop_step_f64(n, <double*>p_param, <double*>p_grad, <double*>p_sq,
                                 <double*>p_ga, <double*>p_buf, lr, alpha, eps,
                                 weight_decay, momentum)


def adadelta_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray square_avg,
                  cnp.ndarray acc_delta, double lr, double rho, double eps,
                  double weight_decay):
    """One Adadelta update over flat buffers."""
    cdef Py_ssize_t n = param.size
    cdef void *p_param = ptr(param)
    cdef void *p_grad = ptr(grad)
    cdef void *p_sq = ptr(square_avg)
    cdef void *p_acc = ptr(acc_delta)
    if is_f32(param):
        with nogil:
            fnn_adadelta_step_f32(n, <float*>p_param, <float*>p_grad, <float*>p_sq,
                                  <float*>p_acc, lr, rho, eps, weight_decay)
    else:
        with nogil:
            fnn_adadelta_step_f64(n, <double*>p_param, <double*>p_grad, <double*>p_sq,
                                  <double*>p_acc, lr, rho, eps, weight_decay)


def adamax_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray exp_avg,
                cnp.ndarray exp_inf, double clr, double beta1, double beta2, double eps,
                double weight_decay):
    """One Adamax update over flat buffers (clr = lr / (1 - beta1**t))."""
    cdef Py_ssize_t n = param.size
    cdef void *p_param = ptr(param)
    cdef void *p_grad = ptr(grad)
    cdef void *p_m = ptr(exp_avg)
    cdef void *p_u = ptr(exp_inf)
    if is_f32(param):
        with nogil:
            fnn_adamax_step_f32(n, <float*>p_param, <float*>p_grad, <float*>p_m,
                                <float*>p_u, clr, beta1, beta2, eps, weight_decay)
    else:
        with nogil:
            fnn_adamax_step_f64(n, <double*>p_param, <double*>p_grad, <double*>p_m,
                                <double*>p_u, clr, beta1, beta2, eps, weight_decay)


def nadam_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray exp_avg,
               cnp.ndarray exp_avg_sq, double lr, double beta1, double beta2, double eps,
               double weight_decay, bint decoupled, double bias_correction2,
               double coef_grad, double coef_avg):
    """One NAdam update over flat buffers (momentum-schedule coefficients precomputed)."""
    cdef Py_ssize_t n = param.size
    cdef void *p_param = ptr(param)
    cdef void *p_grad = ptr(grad)
    cdef void *p_m = ptr(exp_avg)
    cdef void *p_v = ptr(exp_avg_sq)
    if is_f32(param):
        with nogil:
            fnn_nadam_step_f32(n, <float*>p_param, <float*>p_grad, <float*>p_m, <float*>p_v,
                               lr, beta1, beta2, eps, weight_decay, decoupled,
                               bias_correction2, coef_grad, coef_avg)
    else:
        with nogil:
            fnn_nadam_step_f64(n, <double*>p_param, <double*>p_grad, <double*>p_m,
                               <double*>p_v, lr, beta1, beta2, eps, weight_decay, decoupled,
                               bias_correction2, coef_grad, coef_avg)


def sumsq(cnp.ndarray x):
    """sum(x**2) accumulated in double; the same for any thread count."""
    cdef Py_ssize_t n = x.size
    cdef void *p_x = ptr(x)
    cdef double out
    if is_f32(x):
        with nogil:
            out = fnn_sumsq_f32(n, <float*>p_x)
    else:
        with nogil:
            out = fnn_sumsq_f64(n, <double*>p_x)
    return out


def scale(cnp.ndarray x, double s):
    """x *= s in place."""
    cdef Py_ssize_t n = x.size
    cdef void *p_x = ptr(x)
    if is_f32(x):
        with nogil:
            fnn_scale_f32(n, <float*>p_x, s)
    else:
        with nogil:
            fnn_scale_f64(n, <double*>p_x, s)
