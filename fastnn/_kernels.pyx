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
    int FNN_ACT_ABS, FNN_ACT_HARDTANH, FNN_ACT_SOFTPLUS, FNN_ACT_ELU, FNN_ACT_GELU
    int FNN_ACT_GELU_TANH
    int FNN_PAR_MIN
    int FNN_ROW_CHUNKS
    int fnn_act_needs_input(int act)
    void fnn_set_num_threads(int n)
    void fnn_set_blas_thread_hooks(void *get, void *set)
    void fnn_set_gemm_blocks(int n)
    int fnn_get_num_threads()
    uint32_t fnn_random_bits(uint64_t seed, uint64_t counter, uint64_t index)

    ctypedef void (*fnn_blas_gemm_f32)(char *, char *, int *, int *, int *, float *,
                                       float *, int *, float *, int *, float *, float *,
                                       int *)
    ctypedef void (*fnn_blas_gemm_f64)(char *, char *, int *, int *, int *, double *,
                                       double *, int *, double *, int *, double *, double *,
                                       int *)
    void fnn_gemm_f32(fnn_blas_gemm_f32 blas, int trans_a, int trans_b, Py_ssize_t m,
                      Py_ssize_t n, Py_ssize_t k, double alpha, const float *a,
                      Py_ssize_t lda, const float *b, Py_ssize_t ldb, double beta,
                      float *c, Py_ssize_t ldc)
    void fnn_gemm_f64(fnn_blas_gemm_f64 blas, int trans_a, int trans_b, Py_ssize_t m,
                      Py_ssize_t n, Py_ssize_t k, double alpha, const double *a,
                      Py_ssize_t lda, const double *b, Py_ssize_t ldb, double beta,
                      double *c, Py_ssize_t ldc)

    void fnn_bias_act_f32(int act, float alpha, float beta, Py_ssize_t rows,
                          Py_ssize_t cols, const float *bias, float *z, float *y)
    void fnn_bias_act_f64(int act, double alpha, double beta, Py_ssize_t rows,
                          Py_ssize_t cols, const double *bias, double *z, double *y)
    void fnn_act_backward_f32(int act, float alpha, float beta, Py_ssize_t rows,
                              Py_ssize_t cols, const float *z, const float *y,
                              const float *gy, float *gz, float *gbias, double *scratch)
    void fnn_act_backward_f64(int act, double alpha, double beta, Py_ssize_t rows,
                              Py_ssize_t cols, const double *z, const double *y,
                              const double *gy, double *gz, double *gbias, double *scratch)

    void fnn_bn_forward_train_f32(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                                  const float *x, const float *gamma, const float *beta,
                                  double eps, double momentum, float *running_mean,
                                  float *running_var, float *y, float *save_mean,
                                  float *save_invstd, double *scratch)
    void fnn_bn_forward_train_f64(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                                  const double *x, const double *gamma, const double *beta,
                                  double eps, double momentum, double *running_mean,
                                  double *running_var, double *y, double *save_mean,
                                  double *save_invstd, double *scratch)
    void fnn_bn_forward_eval_f32(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                                 const float *x, const float *gamma, const float *beta,
                                 const float *mean, const float *var, double eps, float *y)
    void fnn_bn_forward_eval_f64(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                                 const double *x, const double *gamma, const double *beta,
                                 const double *mean, const double *var, double eps,
                                 double *y)
    void fnn_bn_backward_f32(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                             int batch_stats, const float *x, const float *gy,
                             const float *gamma, const float *mean, const float *invstd,
                             float *gx, float *ggamma, float *gbeta, double *scratch)
    void fnn_bn_backward_f64(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                             int batch_stats, const double *x, const double *gy,
                             const double *gamma, const double *mean, const double *invstd,
                             double *gx, double *ggamma, double *gbeta, double *scratch)
    void fnn_bn_relu_dropout_train_f32(Py_ssize_t N, Py_ssize_t C, const float *x,
                                       const float *gamma, const float *beta, double eps,
                                       double momentum, float *running_mean,
                                       float *running_var, float *y, float *save_mean,
                                       float *save_invstd, float *scale, float *shift,
                                       uint8_t *mask, double p, double dscale,
                                       uint64_t seed, uint64_t counter, double *scratch)
    void fnn_bn_relu_dropout_train_f64(Py_ssize_t N, Py_ssize_t C, const double *x,
                                       const double *gamma, const double *beta, double eps,
                                       double momentum, double *running_mean,
                                       double *running_var, double *y, double *save_mean,
                                       double *save_invstd, double *scale, double *shift,
                                       uint8_t *mask, double p, double dscale,
                                       uint64_t seed, uint64_t counter, double *scratch)
    void fnn_bn_relu_dropout_backward_f32(Py_ssize_t N, Py_ssize_t C, const float *x,
                                          const float *gy, const float *gamma,
                                          const float *mean, const float *invstd,
                                          const float *scale, const float *shift,
                                          const uint8_t *mask, double dscale, float *gx,
                                          float *ggamma, float *gbeta, double *scratch)
    void fnn_bn_relu_dropout_backward_f64(Py_ssize_t N, Py_ssize_t C, const double *x,
                                          const double *gy, const double *gamma,
                                          const double *mean, const double *invstd,
                                          const double *scale, const double *shift,
                                          const uint8_t *mask, double dscale, double *gx,
                                          double *ggamma, double *gbeta, double *scratch)
    void fnn_rownorm_forward_f32(Py_ssize_t R, Py_ssize_t D, Py_ssize_t groups,
                                 Py_ssize_t inner, const float *x, const float *w,
                                 const float *b, double eps, float *y, float *mean,
                                 float *invstd)
    void fnn_rownorm_forward_f64(Py_ssize_t R, Py_ssize_t D, Py_ssize_t groups,
                                 Py_ssize_t inner, const double *x, const double *w,
                                 const double *b, double eps, double *y, double *mean,
                                 double *invstd)
    void fnn_rownorm_backward_f32(Py_ssize_t R, Py_ssize_t D, Py_ssize_t groups,
                                  Py_ssize_t inner, const float *x, const float *gy,
                                  const float *w, const float *mean, const float *invstd,
                                  float *gx, float *gw, float *gb)
    void fnn_rownorm_backward_f64(Py_ssize_t R, Py_ssize_t D, Py_ssize_t groups,
                                  Py_ssize_t inner, const double *x, const double *gy,
                                  const double *w, const double *mean,
                                  const double *invstd, double *gx, double *gw, double *gb)
    void fnn_weight_norm_forward_f32(Py_ssize_t rows, Py_ssize_t cols, const float *v,
                                     const float *g, float *w, float *norms)
    void fnn_weight_norm_forward_f64(Py_ssize_t rows, Py_ssize_t cols, const double *v,
                                     const double *g, double *w, double *norms)
    void fnn_weight_norm_backward_f32(Py_ssize_t rows, Py_ssize_t cols, const float *v,
                                      const float *g, const float *norms, const float *gw,
                                      float *gv, float *gg)
    void fnn_weight_norm_backward_f64(Py_ssize_t rows, Py_ssize_t cols, const double *v,
                                      const double *g, const double *norms,
                                      const double *gw, double *gv, double *gg)

    void fnn_prelu_forward_f32(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                               const float *x, const float *a, Py_ssize_t nparam, float *y)
    void fnn_prelu_forward_f64(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                               const double *x, const double *a, Py_ssize_t nparam,
                               double *y)
    void fnn_prelu_backward_f32(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                                const float *x, const float *gy, const float *a,
                                Py_ssize_t nparam, float *gx, float *ga, double *scratch)
    void fnn_prelu_backward_f64(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                                const double *x, const double *gy, const double *a,
                                Py_ssize_t nparam, double *gx, double *ga, double *scratch)
    void fnn_maxout_forward_f32(Py_ssize_t rows, Py_ssize_t units, Py_ssize_t pieces,
                                const float *z, float *y, uint8_t *idx)
    void fnn_maxout_forward_f64(Py_ssize_t rows, Py_ssize_t units, Py_ssize_t pieces,
                                const double *z, double *y, uint8_t *idx)
    void fnn_maxout_backward_f32(Py_ssize_t rows, Py_ssize_t units, Py_ssize_t pieces,
                                 const float *gy, const uint8_t *idx, float *gz)
    void fnn_maxout_backward_f64(Py_ssize_t rows, Py_ssize_t units, Py_ssize_t pieces,
                                 const double *gy, const uint8_t *idx, double *gz)
    void fnn_softmax_forward_f32(Py_ssize_t rows, Py_ssize_t cols, const float *x,
                                 float *y)
    void fnn_softmax_forward_f64(Py_ssize_t rows, Py_ssize_t cols, const double *x,
                                 double *y)
    void fnn_softmax_backward_f32(Py_ssize_t rows, Py_ssize_t cols, const float *y,
                                  const float *gy, float *gx)
    void fnn_softmax_backward_f64(Py_ssize_t rows, Py_ssize_t cols, const double *y,
                                  const double *gy, double *gx)
    void fnn_rbf_forward_f32(Py_ssize_t rows, Py_ssize_t C, const float *xsq,
                             const float *csq, const float *width, float *xc_d2, float *y)
    void fnn_rbf_forward_f64(Py_ssize_t rows, Py_ssize_t C, const double *xsq,
                             const double *csq, const double *width, double *xc_d2,
                             double *y)
    void fnn_rbf_backward_f32(Py_ssize_t rows, Py_ssize_t C, const float *d2,
                              const float *y, const float *gy, const float *width,
                              float *gd2, float *gsum, float *grow, float *gwidth)
    void fnn_rbf_backward_f64(Py_ssize_t rows, Py_ssize_t C, const double *d2,
                              const double *y, const double *gy, const double *width,
                              double *gd2, double *gsum, double *grow, double *gwidth)

    void fnn_dropout_forward_f32(Py_ssize_t n, const float *x, float *y, uint8_t *mask,
                                 double p, double scale, uint64_t seed, uint64_t counter)
    void fnn_dropout_forward_f64(Py_ssize_t n, const double *x, double *y, uint8_t *mask,
                                 double p, double scale, uint64_t seed, uint64_t counter)
    void fnn_dropout_backward_f32(Py_ssize_t n, const float *gy, const uint8_t *mask,
                                  double scale, float *gx)
    void fnn_dropout_backward_f64(Py_ssize_t n, const double *gy, const uint8_t *mask,
                                  double scale, double *gx)

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
    void fnn_zero_f32(Py_ssize_t n, float *x)
    void fnn_zero_f64(Py_ssize_t n, double *x)
    double fnn_penalty_f32(Py_ssize_t n, const float *w, float *grad, double l1, double l2)
    double fnn_penalty_f64(Py_ssize_t n, const double *w, double *grad, double l1,
                           double l2)

ACT_IDENTITY = FNN_ACT_IDENTITY
ACT_RELU = FNN_ACT_RELU
ACT_LEAKY_RELU = FNN_ACT_LEAKY_RELU
ACT_SIGMOID = FNN_ACT_SIGMOID
ACT_TANH = FNN_ACT_TANH
ACT_ABS = FNN_ACT_ABS
ACT_HARDTANH = FNN_ACT_HARDTANH
ACT_SOFTPLUS = FNN_ACT_SOFTPLUS
ACT_ELU = FNN_ACT_ELU
ACT_GELU = FNN_ACT_GELU
ACT_GELU_TANH = FNN_ACT_GELU_TANH
PARALLEL_MIN_ELEMENTS = FNN_PAR_MIN
# Column-sum kernels (bias gradient, batch norm) take a float64 scratch of
# COLSUM_SCRATCH_ROWS * width elements (width: columns, 2 * channels for batch norm).
COLSUM_SCRATCH_ROWS = FNN_ROW_CHUNKS + 3


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


def set_gemm_blocks(int n):
    """Cut large GEMMs into at most the power of two >= n blocks (one per thread)."""
    fnn_set_gemm_blocks(n)


def set_blas_thread_hooks(size_t get_threads, size_t set_threads):
    """Addresses of the BLAS library's int get_num_threads(void) and
    void set_num_threads(int) (0, 0 to forget them): fastnn's GEMMs then keep BLAS on
    one thread whatever else changes it."""
    fnn_set_blas_thread_hooks(<void*>get_threads, <void*>set_threads)


def random_bits(uint64_t seed, uint64_t counter, cnp.ndarray[uint32_t, ndim=1] out):
    """out[k] = the 32 dropout bits of element k for (seed, counter)."""
    cdef Py_ssize_t k
    with nogil:
        for k in range(out.shape[0]):
            out[k] = fnn_random_bits(seed, counter, k)


def gemm(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a, bint trans_b,
         double alpha=1.0, double beta=0.0):
    """C := alpha * op(A) @ op(B) + beta * C for C-contiguous 2-D A, B, C, through
    scipy's BLAS (run single-threaded; csrc/gemm.c splits large products between
    fastnn's threads)."""
    cdef Py_ssize_t m = c.shape[0], n = c.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t lda = max(1, a.shape[1]), ldb = max(1, b.shape[1]), ldc = max(1, n)
    cdef void *p_a = ptr(a)
    cdef void *p_b = ptr(b)
    cdef void *p_c = ptr(c)
    if is_f32(c):
        with nogil:
            fnn_gemm_f32(<fnn_blas_gemm_f32>sgemm, trans_a, trans_b, m, n, k, alpha,
                         <float*>p_a, lda, <float*>p_b, ldb, beta, <float*>p_c, ldc)
    else:
        with nogil:
            fnn_gemm_f64(<fnn_blas_gemm_f64>dgemm, trans_a, trans_b, m, n, k, alpha,
                         <double*>p_a, lda, <double*>p_b, ldb, beta, <double*>p_c, ldc)


def bias_act(int act, double alpha, double beta, bias, cnp.ndarray z, cnp.ndarray y):
    """y = act(z + bias) over a (rows, cols) z; z += bias in place unless y is z.
    alpha, beta: the activation's parameters (csrc/generic/act_math.h)."""
    cdef void *p_bias = ptr(bias)
    cdef void *p_z = ptr(z)
    cdef void *p_y = ptr(y)
    cdef Py_ssize_t rows = z.shape[0], cols = z.size // rows if rows else 0
    if is_f32(z):
        with nogil:
            fnn_bias_act_f32(act, <float>alpha, <float>beta, rows, cols, <float*>p_bias,
                             <float*>p_z, <float*>p_y)
    else:
        with nogil:
            fnn_bias_act_f64(act, alpha, beta, rows, cols, <double*>p_bias, <double*>p_z,
                             <double*>p_y)


def act_backward(int act, double alpha, double beta, z, y, cnp.ndarray gy, gz, gbias,
                 scratch=None):
    """gz = gy * act'(z, y); gbias += column sums of gz (if given; then scratch is a
    float64 array of COLSUM_SCRATCH_ROWS * cols elements, and gz may be None when only
    the sums are wanted)."""
    cdef void *p_z = ptr(z)
    cdef void *p_y = ptr(y)
    cdef void *p_gy = ptr(gy)
    cdef void *p_gz = ptr(gz)
    cdef void *p_gbias = ptr(gbias)
    cdef void *p_scratch = ptr(scratch)
    cdef Py_ssize_t rows = gy.shape[0], cols = gy.size // rows if rows else 0
    if is_f32(gy):
        with nogil:
            fnn_act_backward_f32(act, <float>alpha, <float>beta, rows, cols, <float*>p_z,
                                 <float*>p_y, <float*>p_gy, <float*>p_gz,
                                 <float*>p_gbias, <double*>p_scratch)
    else:
        with nogil:
            fnn_act_backward_f64(act, alpha, beta, rows, cols, <double*>p_z, <double*>p_y,
                                 <double*>p_gy, <double*>p_gz, <double*>p_gbias,
                                 <double*>p_scratch)


cdef inline Py_ssize_t inner_size(cnp.ndarray x):
    """Elements per (sample, channel) of an (N, C, ...) array: 1 for (N, C)."""
    return x.size // (x.shape[0] * x.shape[1]) if x.shape[0] * x.shape[1] else 1


def bn_forward_train(cnp.ndarray x, gamma, beta, double eps, double momentum,
                     running_mean, running_var, cnp.ndarray y, cnp.ndarray save_mean,
                     cnp.ndarray save_invstd, cnp.ndarray scratch):
    """Batch statistics per channel of an (N, C, ...) x, normalise + affine, update of
    the running statistics (if given); scratch: float64, COLSUM_SCRATCH_ROWS * 2 * C."""
    cdef Py_ssize_t outer = x.shape[0], C = x.shape[1], inner = inner_size(x)
    cdef void *p_x = ptr(x)
    cdef void *p_gamma = ptr(gamma)
    cdef void *p_beta = ptr(beta)
    cdef void *p_rm = ptr(running_mean)
    cdef void *p_rv = ptr(running_var)
    cdef void *p_y = ptr(y)
    cdef void *p_sm = ptr(save_mean)
    cdef void *p_si = ptr(save_invstd)
    cdef void *p_scratch = ptr(scratch)
    if is_f32(x):
        with nogil:
            fnn_bn_forward_train_f32(outer, C, inner, <float*>p_x, <float*>p_gamma,
                                     <float*>p_beta, eps, momentum, <float*>p_rm,
                                     <float*>p_rv, <float*>p_y, <float*>p_sm, <float*>p_si,
                                     <double*>p_scratch)
    else:
        with nogil:
            fnn_bn_forward_train_f64(outer, C, inner, <double*>p_x, <double*>p_gamma,
                                     <double*>p_beta, eps, momentum, <double*>p_rm,
                                     <double*>p_rv, <double*>p_y, <double*>p_sm,
                                     <double*>p_si, <double*>p_scratch)


def bn_forward_eval(cnp.ndarray x, gamma, beta, cnp.ndarray mean, cnp.ndarray var,
                    double eps, cnp.ndarray y):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta per channel of an (N, C, ...) x."""
    cdef Py_ssize_t outer = x.shape[0], C = x.shape[1], inner = inner_size(x)
    cdef void *p_x = ptr(x)
    cdef void *p_gamma = ptr(gamma)
    cdef void *p_beta = ptr(beta)
    cdef void *p_mean = ptr(mean)
    cdef void *p_var = ptr(var)
    cdef void *p_y = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_bn_forward_eval_f32(outer, C, inner, <float*>p_x, <float*>p_gamma,
                                    <float*>p_beta, <float*>p_mean, <float*>p_var, eps,
                                    <float*>p_y)
    else:
        with nogil:
            fnn_bn_forward_eval_f64(outer, C, inner, <double*>p_x, <double*>p_gamma,
                                    <double*>p_beta, <double*>p_mean, <double*>p_var, eps,
                                    <double*>p_y)


def bn_backward(bint batch_stats, cnp.ndarray x, cnp.ndarray gy, gamma,
                cnp.ndarray mean, cnp.ndarray invstd, cnp.ndarray gx, ggamma, gbeta,
                cnp.ndarray scratch):
    """Input gradient into gx; gamma/beta gradients accumulated (if given); scratch as
    for bn_forward_train."""
    cdef Py_ssize_t outer = x.shape[0], C = x.shape[1], inner = inner_size(x)
    cdef void *p_x = ptr(x)
    cdef void *p_gy = ptr(gy)
    cdef void *p_gamma = ptr(gamma)
    cdef void *p_mean = ptr(mean)
    cdef void *p_invstd = ptr(invstd)
    cdef void *p_gx = ptr(gx)
    cdef void *p_ggamma = ptr(ggamma)
    cdef void *p_gbeta = ptr(gbeta)
    cdef void *p_scratch = ptr(scratch)
    if is_f32(x):
        with nogil:
            fnn_bn_backward_f32(outer, C, inner, batch_stats, <float*>p_x, <float*>p_gy,
                                <float*>p_gamma, <float*>p_mean, <float*>p_invstd,
                                <float*>p_gx, <float*>p_ggamma, <float*>p_gbeta,
                                <double*>p_scratch)
    else:
        with nogil:
            fnn_bn_backward_f64(outer, C, inner, batch_stats, <double*>p_x, <double*>p_gy,
                                <double*>p_gamma, <double*>p_mean, <double*>p_invstd,
                                <double*>p_gx, <double*>p_ggamma, <double*>p_gbeta,
                                <double*>p_scratch)


def bn_relu_dropout_train(cnp.ndarray x, gamma, beta, double eps, double momentum,
                          running_mean, running_var, cnp.ndarray y, cnp.ndarray save_mean,
                          cnp.ndarray save_invstd, cnp.ndarray scale, cnp.ndarray shift, mask,
                          double p, double dscale, uint64_t seed, uint64_t counter,
                          cnp.ndarray scratch):
    """BatchNorm1d (training) -> ReLU -> inverted dropout (mask None: none) on (N, C) x
    in two passes; scale/shift (C each) receive the normalising affine for backward."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef void *p_x = ptr(x)
    cdef void *p_gamma = ptr(gamma)
    cdef void *p_beta = ptr(beta)
    cdef void *p_rm = ptr(running_mean)
    cdef void *p_rv = ptr(running_var)
    cdef void *p_y = ptr(y)
    cdef void *p_sm = ptr(save_mean)
    cdef void *p_si = ptr(save_invstd)
    cdef void *p_scale = ptr(scale)
    cdef void *p_shift = ptr(shift)
    cdef void *p_mask = ptr(mask)
    cdef void *p_scratch = ptr(scratch)
    if is_f32(x):
        with nogil:
            fnn_bn_relu_dropout_train_f32(N, C, <float*>p_x, <float*>p_gamma, <float*>p_beta,
                                          eps, momentum, <float*>p_rm, <float*>p_rv,
                                          <float*>p_y, <float*>p_sm, <float*>p_si,
                                          <float*>p_scale, <float*>p_shift,
                                          <uint8_t*>p_mask, p, dscale, seed, counter,
                                          <double*>p_scratch)
    else:
        with nogil:
            fnn_bn_relu_dropout_train_f64(N, C, <double*>p_x, <double*>p_gamma,
                                          <double*>p_beta, eps, momentum, <double*>p_rm,
                                          <double*>p_rv, <double*>p_y, <double*>p_sm,
                                          <double*>p_si, <double*>p_scale, <double*>p_shift,
                                          <uint8_t*>p_mask, p, dscale, seed, counter,
                                          <double*>p_scratch)


def bn_relu_dropout_backward(cnp.ndarray x, cnp.ndarray gy, gamma, cnp.ndarray mean,
                             cnp.ndarray invstd, cnp.ndarray scale, cnp.ndarray shift, mask,
                             double dscale, cnp.ndarray gx, ggamma, gbeta,
                             cnp.ndarray scratch):
    """Backward of bn_relu_dropout_train: gx, and gamma/beta gradients accumulated."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef void *p_x = ptr(x)
    cdef void *p_gy = ptr(gy)
    cdef void *p_gamma = ptr(gamma)
    cdef void *p_mean = ptr(mean)
    cdef void *p_invstd = ptr(invstd)
    cdef void *p_scale = ptr(scale)
    cdef void *p_shift = ptr(shift)
    cdef void *p_mask = ptr(mask)
    cdef void *p_gx = ptr(gx)
    cdef void *p_gg = ptr(ggamma)
    cdef void *p_gb = ptr(gbeta)
    cdef void *p_scratch = ptr(scratch)
    if is_f32(x):
        with nogil:
            fnn_bn_relu_dropout_backward_f32(N, C, <float*>p_x, <float*>p_gy,
                                             <float*>p_gamma, <float*>p_mean,
                                             <float*>p_invstd, <float*>p_scale,
                                             <float*>p_shift, <uint8_t*>p_mask, dscale,
                                             <float*>p_gx, <float*>p_gg, <float*>p_gb,
                                             <double*>p_scratch)
    else:
        with nogil:
            fnn_bn_relu_dropout_backward_f64(N, C, <double*>p_x, <double*>p_gy,
                                             <double*>p_gamma, <double*>p_mean,
                                             <double*>p_invstd, <double*>p_scale,
                                             <double*>p_shift, <uint8_t*>p_mask, dscale,
                                             <double*>p_gx, <double*>p_gg, <double*>p_gb,
                                             <double*>p_scratch)


def rownorm_forward(cnp.ndarray x, Py_ssize_t D, Py_ssize_t groups, Py_ssize_t inner, w, b,
                    double eps, cnp.ndarray y, cnp.ndarray mean, cnp.ndarray invstd):
    """Normalise each of the x.size // D rows of length D; per-channel affine w, b."""
    cdef Py_ssize_t R = x.size // D
    cdef void *p_x = ptr(x)
    cdef void *p_w = ptr(w)
    cdef void *p_b = ptr(b)
    cdef void *p_y = ptr(y)
    cdef void *p_mean = ptr(mean)
    cdef void *p_invstd = ptr(invstd)
    if is_f32(x):
        with nogil:
            fnn_rownorm_forward_f32(R, D, groups, inner, <float*>p_x, <float*>p_w,
                                    <float*>p_b, eps, <float*>p_y, <float*>p_mean,
                                    <float*>p_invstd)
    else:
        with nogil:
            fnn_rownorm_forward_f64(R, D, groups, inner, <double*>p_x, <double*>p_w,
                                    <double*>p_b, eps, <double*>p_y, <double*>p_mean,
                                    <double*>p_invstd)


def rownorm_backward(cnp.ndarray x, Py_ssize_t D, Py_ssize_t groups, Py_ssize_t inner,
                     cnp.ndarray gy, w, cnp.ndarray mean, cnp.ndarray invstd, gx, gw, gb):
    """Input gradient into gx (if given); w/b gradients accumulated (if given)."""
    cdef Py_ssize_t R = x.size // D
    cdef void *p_x = ptr(x)
    cdef void *p_gy = ptr(gy)
    cdef void *p_w = ptr(w)
    cdef void *p_mean = ptr(mean)
    cdef void *p_invstd = ptr(invstd)
    cdef void *p_gx = ptr(gx)
    cdef void *p_gw = ptr(gw)
    cdef void *p_gb = ptr(gb)
    if is_f32(x):
        with nogil:
            fnn_rownorm_backward_f32(R, D, groups, inner, <float*>p_x, <float*>p_gy,
                                     <float*>p_w, <float*>p_mean, <float*>p_invstd,
                                     <float*>p_gx, <float*>p_gw, <float*>p_gb)
    else:
        with nogil:
            fnn_rownorm_backward_f64(R, D, groups, inner, <double*>p_x, <double*>p_gy,
                                     <double*>p_w, <double*>p_mean, <double*>p_invstd,
                                     <double*>p_gx, <double*>p_gw, <double*>p_gb)


def weight_norm_forward(cnp.ndarray v, cnp.ndarray g, cnp.ndarray w, cnp.ndarray norms):
    """w = g * v / |v| over the rows of a 2-D v; norms gets |v| per row."""
    cdef Py_ssize_t rows = v.shape[0], cols = v.size // v.shape[0]
    cdef void *p_v = ptr(v)
    cdef void *p_g = ptr(g)
    cdef void *p_w = ptr(w)
    cdef void *p_n = ptr(norms)
    if is_f32(v):
        with nogil:
            fnn_weight_norm_forward_f32(rows, cols, <float*>p_v, <float*>p_g, <float*>p_w,
                                        <float*>p_n)
    else:
        with nogil:
            fnn_weight_norm_forward_f64(rows, cols, <double*>p_v, <double*>p_g,
                                        <double*>p_w, <double*>p_n)


def weight_norm_backward(cnp.ndarray v, cnp.ndarray g, cnp.ndarray norms, cnp.ndarray gw,
                         gv, gg):
    """Accumulate the gradients of v and g from gw = dL/dw."""
    cdef Py_ssize_t rows = v.shape[0], cols = v.size // v.shape[0]
    cdef void *p_v = ptr(v)
    cdef void *p_g = ptr(g)
    cdef void *p_n = ptr(norms)
    cdef void *p_gw = ptr(gw)
    cdef void *p_gv = ptr(gv)
    cdef void *p_gg = ptr(gg)
    if is_f32(v):
        with nogil:
            fnn_weight_norm_backward_f32(rows, cols, <float*>p_v, <float*>p_g, <float*>p_n,
                                         <float*>p_gw, <float*>p_gv, <float*>p_gg)
    else:
        with nogil:
            fnn_weight_norm_backward_f64(rows, cols, <double*>p_v, <double*>p_g,
                                         <double*>p_n, <double*>p_gw, <double*>p_gv,
                                         <double*>p_gg)


def prelu_forward(cnp.ndarray x, cnp.ndarray a, cnp.ndarray y):
    """y = x if x > 0 else a_c * x for (N, C, ...) x; a has C entries or one."""
    cdef Py_ssize_t outer = x.shape[0]
    cdef Py_ssize_t C = x.shape[1] if x.ndim > 1 else 1
    cdef Py_ssize_t inner = x.size // (outer * C) if outer * C else 1
    cdef Py_ssize_t nparam = a.size
    cdef void *p_x = ptr(x)
    cdef void *p_a = ptr(a)
    cdef void *p_y = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_prelu_forward_f32(outer, C, inner, <float*>p_x, <float*>p_a, nparam,
                                  <float*>p_y)
    else:
        with nogil:
            fnn_prelu_forward_f64(outer, C, inner, <double*>p_x, <double*>p_a, nparam,
                                  <double*>p_y)


def prelu_backward(cnp.ndarray x, cnp.ndarray gy, cnp.ndarray a, cnp.ndarray gx, ga,
                   cnp.ndarray scratch):
    """Input gradient into gx; slope gradient accumulated into ga (if given); scratch:
    float64, COLSUM_SCRATCH_ROWS * channels."""
    cdef Py_ssize_t outer = x.shape[0]
    cdef Py_ssize_t C = x.shape[1] if x.ndim > 1 else 1
    cdef Py_ssize_t inner = x.size // (outer * C) if outer * C else 1
    cdef Py_ssize_t nparam = a.size
    cdef void *p_x = ptr(x)
    cdef void *p_gy = ptr(gy)
    cdef void *p_a = ptr(a)
    cdef void *p_gx = ptr(gx)
    cdef void *p_ga = ptr(ga)
    cdef void *p_scratch = ptr(scratch)
    if is_f32(x):
        with nogil:
            fnn_prelu_backward_f32(outer, C, inner, <float*>p_x, <float*>p_gy, <float*>p_a,
                                   nparam, <float*>p_gx, <float*>p_ga, <double*>p_scratch)
    else:
        with nogil:
            fnn_prelu_backward_f64(outer, C, inner, <double*>p_x, <double*>p_gy,
                                   <double*>p_a, nparam, <double*>p_gx, <double*>p_ga,
                                   <double*>p_scratch)


def maxout_forward(cnp.ndarray z, Py_ssize_t pieces, cnp.ndarray y, cnp.ndarray idx):
    """y[i, o] = max_p z[i, o * pieces + p]; idx (uint8) gets the winning p."""
    cdef Py_ssize_t rows = y.shape[0], units = y.shape[1]
    cdef void *p_z = ptr(z)
    cdef void *p_y = ptr(y)
    cdef void *p_idx = ptr(idx)
    if is_f32(z):
        with nogil:
            fnn_maxout_forward_f32(rows, units, pieces, <float*>p_z, <float*>p_y,
                                   <uint8_t*>p_idx)
    else:
        with nogil:
            fnn_maxout_forward_f64(rows, units, pieces, <double*>p_z, <double*>p_y,
                                   <uint8_t*>p_idx)


def maxout_backward(cnp.ndarray gy, cnp.ndarray idx, Py_ssize_t pieces, cnp.ndarray gz):
    """gz = gy routed to each unit's winning piece, zero elsewhere."""
    cdef Py_ssize_t rows = gy.shape[0], units = gy.shape[1]
    cdef void *p_gy = ptr(gy)
    cdef void *p_idx = ptr(idx)
    cdef void *p_gz = ptr(gz)
    if is_f32(gy):
        with nogil:
            fnn_maxout_backward_f32(rows, units, pieces, <float*>p_gy, <uint8_t*>p_idx,
                                    <float*>p_gz)
    else:
        with nogil:
            fnn_maxout_backward_f64(rows, units, pieces, <double*>p_gy, <uint8_t*>p_idx,
                                    <double*>p_gz)


def softmax_forward(cnp.ndarray x, cnp.ndarray y):
    """Stable softmax over the last axis (x viewed as (rows, last))."""
    cdef Py_ssize_t cols = x.shape[x.ndim - 1]
    cdef Py_ssize_t rows = x.size // cols if cols else 0
    cdef void *p_x = ptr(x)
    cdef void *p_y = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_softmax_forward_f32(rows, cols, <float*>p_x, <float*>p_y)
    else:
        with nogil:
            fnn_softmax_forward_f64(rows, cols, <double*>p_x, <double*>p_y)


def softmax_backward(cnp.ndarray y, cnp.ndarray gy, cnp.ndarray gx):
    """gx = y * (gy - sum(gy * y)) over the last axis."""
    cdef Py_ssize_t cols = y.shape[y.ndim - 1]
    cdef Py_ssize_t rows = y.size // cols if cols else 0
    cdef void *p_y = ptr(y)
    cdef void *p_gy = ptr(gy)
    cdef void *p_gx = ptr(gx)
    if is_f32(y):
        with nogil:
            fnn_softmax_backward_f32(rows, cols, <float*>p_y, <float*>p_gy, <float*>p_gx)
    else:
        with nogil:
            fnn_softmax_backward_f64(rows, cols, <double*>p_y, <double*>p_gy, <double*>p_gx)


def rbf_forward(cnp.ndarray xsq, cnp.ndarray csq, cnp.ndarray width, cnp.ndarray xc_d2,
                cnp.ndarray y):
    """xc_d2: x @ centers.T in, squared distances out; y = exp(-d2 / (2 width^2))."""
    cdef Py_ssize_t rows = y.shape[0], C = y.shape[1]
    cdef void *p_xsq = ptr(xsq)
    cdef void *p_csq = ptr(csq)
    cdef void *p_w = ptr(width)
    cdef void *p_d2 = ptr(xc_d2)
    cdef void *p_y = ptr(y)
    if is_f32(y):
        with nogil:
            fnn_rbf_forward_f32(rows, C, <float*>p_xsq, <float*>p_csq, <float*>p_w,
                                <float*>p_d2, <float*>p_y)
    else:
        with nogil:
            fnn_rbf_forward_f64(rows, C, <double*>p_xsq, <double*>p_csq, <double*>p_w,
                                <double*>p_d2, <double*>p_y)


def rbf_backward(cnp.ndarray d2, cnp.ndarray y, cnp.ndarray gy, cnp.ndarray width,
                 cnp.ndarray gd2, cnp.ndarray gsum, cnp.ndarray grow, gwidth):
    """gd2 = dL/d(d2); its column sums into gsum, row sums into grow; width gradient
    accumulated into gwidth (if given)."""
    cdef Py_ssize_t rows = y.shape[0], C = y.shape[1]
    cdef void *p_d2 = ptr(d2)
    cdef void *p_y = ptr(y)
    cdef void *p_gy = ptr(gy)
    cdef void *p_w = ptr(width)
    cdef void *p_gd2 = ptr(gd2)
    cdef void *p_gsum = ptr(gsum)
    cdef void *p_grow = ptr(grow)
    cdef void *p_gw = ptr(gwidth)
    if is_f32(y):
        with nogil:
            fnn_rbf_backward_f32(rows, C, <float*>p_d2, <float*>p_y, <float*>p_gy,
                                 <float*>p_w, <float*>p_gd2, <float*>p_gsum, <float*>p_grow,
                                 <float*>p_gw)
    else:
        with nogil:
            fnn_rbf_backward_f64(rows, C, <double*>p_d2, <double*>p_y, <double*>p_gy,
                                 <double*>p_w, <double*>p_gd2, <double*>p_gsum,
                                 <double*>p_grow, <double*>p_gw)


def dropout_forward(cnp.ndarray x, cnp.ndarray y, cnp.ndarray mask, double p, double scale,
                    uint64_t seed, uint64_t counter):
    """y = x * mask * scale, mask drawn from (seed, counter); x.size < 2**32."""
    cdef Py_ssize_t n = x.size
    cdef void *p_x = ptr(x)
    cdef void *p_y = ptr(y)
    cdef void *p_mask = ptr(mask)
    if is_f32(x):
        with nogil:
            fnn_dropout_forward_f32(n, <float*>p_x, <float*>p_y, <uint8_t*>p_mask, p, scale,
                                    seed, counter)
    else:
        with nogil:
            fnn_dropout_forward_f64(n, <double*>p_x, <double*>p_y, <uint8_t*>p_mask, p,
                                    scale, seed, counter)


def dropout_backward(cnp.ndarray gy, cnp.ndarray mask, double scale, cnp.ndarray gx):
    """gx = gy * mask * scale."""
    cdef Py_ssize_t n = gy.size
    cdef void *p_gy = ptr(gy)
    cdef void *p_mask = ptr(mask)
    cdef void *p_gx = ptr(gx)
    if is_f32(gy):
        with nogil:
            fnn_dropout_backward_f32(n, <float*>p_gy, <uint8_t*>p_mask, scale, <float*>p_gx)
    else:
        with nogil:
            fnn_dropout_backward_f64(n, <double*>p_gy, <uint8_t*>p_mask, scale,
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


def zero(cnp.ndarray x):
    """x = 0 in place (threads share large buffers)."""
    cdef Py_ssize_t n = x.size
    cdef void *p_x = ptr(x)
    if is_f32(x):
        with nogil:
            fnn_zero_f32(n, <float*>p_x)
    else:
        with nogil:
            fnn_zero_f64(n, <double*>p_x)


def penalty(cnp.ndarray w, cnp.ndarray grad, double l1, double l2):
    """Returns l1 * sum|w| + l2 * sum w^2 and adds its gradient to grad."""
    cdef Py_ssize_t n = w.size
    cdef void *p_w = ptr(w)
    cdef void *p_g = ptr(grad)
    cdef double out
    if is_f32(w):
        with nogil:
            out = fnn_penalty_f32(n, <float*>p_w, <float*>p_g, l1, l2)
    else:
        with nogil:
            out = fnn_penalty_f64(n, <double*>p_w, <double*>p_g, l1, l2)
    return out
include "_kernels_conv.pxi"
