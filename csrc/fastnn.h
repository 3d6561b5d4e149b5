/* fastnn C kernels: declarations shared by the kernel families and the Cython binding.
 *
 * Conventions
 * - Every kernel exists for float (suffix _f32) and double (_f64), generated from one
 *   body in generic/<family>.h by instantiate.h.
 * - Arrays are C-contiguous; a (rows, cols) matrix has row stride cols. Kernels trust
 *   their arguments: shapes, dtypes and label ranges are checked by the binding
 *   (fastnn/_check.pxi and the wrappers of fastnn/_kernels_<family>.pxi).
 * - Reductions are deterministic: work is split by data layout (columns or fixed-size
 *   chunks), never by thread, so results are bit-identical for any thread count.
 * - No Python.h here: these files are plain C99 + OpenMP.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>
#include <stdint.h>

/* Elementwise kernels with fewer elements than this run on one thread: waking a
 * thread team costs microseconds that a small batch cannot pay back. */
#define FNN_PAR_MIN 32768

/* Columns per block in column-blocked reductions (bias gradient, batch norm). */
#define FNN_COL_BLOCK 64

/* Values per partial sum in the data type (vectorised) before the partials are added up
 * in double: short enough that float's precision holds in each (batch norm backward,
 * convolution prologue). */
#define FNN_SUM_SPAN 256

/* Column sums over rows use at most this many row chunks. Their scratch, passed in by
 * the caller, holds FNN_COLSUM_SCRATCH(width) doubles: the sums, the chunks' partial
 * sums, and 2 * width more for the kernel's own per-column values. */
#define FNN_ROW_CHUNKS 16
#define FNN_COLSUM_SCRATCH(width) ((FNN_ROW_CHUNKS + 3) * (width))

/* Upper bound on the chunks of a deterministic chunked sum (see fnn_chunk_size). */
#define FNN_MAX_CHUNKS 1024

/* Activation codes, exported by the binding (fastnn/_kernels_dense.pxi). */
enum fnn_act {
    FNN_ACT_IDENTITY = 0,
    FNN_ACT_RELU = 1,
    FNN_ACT_LEAKY_RELU = 2,
    FNN_ACT_SIGMOID = 3,
    FNN_ACT_TANH = 4,
    FNN_ACT_ABS = 5,
    FNN_ACT_HARDTANH = 6,
    FNN_ACT_SOFTPLUS = 7,
    FNN_ACT_ELU = 8,
    FNN_ACT_GELU = 9,
    FNN_ACT_GELU_TANH = 10,
    FNN_ACT_COUNT
};

/* Elementwise loss codes of fnn_pointwise_loss. The order is part of the binding
 * (fastnn/_kernels_loss.pxi). */
enum fnn_loss {
    FNN_LOSS_MSE = 0,
    FNN_LOSS_L1 = 1,
    FNN_LOSS_HUBER = 2,
    FNN_LOSS_SMOOTH_L1 = 3,
    FNN_LOSS_BCE_LOGITS = 4,
    FNN_LOSS_COUNT
};

/* 1 if the activation's derivative needs its input (pre-activation), 0 if the output
 * alone determines it (then the input need not be kept for the backward pass). */
int fnn_act_needs_input(int act);

/* The thread count the user set (set_num_threads), and the count every parallel region
 * uses now (fnn_num_threads): at most the former, fewer while other processes keep
 * cores busy (fastnn.threads adjusts it with fnn_use_threads). */
void fnn_set_num_threads(int n);
int fnn_get_num_threads(void);
void fnn_use_threads(int n);
extern int fnn_num_threads;
/* Run one empty parallel region of fnn_get_num_threads() threads, which creates the OpenMP
 * team now (runtime.c): libgomp ends the process when it cannot create a thread, so
 * fastnn checks the address space for their stacks first and then starts them here. */
void fnn_start_team(void);

/* GEMMs are cut into at most this many blocks (a power of two >= n); set once from the
 * machine's CPU count so that the cut, and the results, never depend on the thread
 * count in use (gemm.c). */
void fnn_set_gemm_blocks(int n);
extern int fnn_gemm_blocks;

/* Let fastnn keep the BLAS behind its GEMMs single-threaded (runtime.c): pointers to
 * int get_threads(void) and void set_threads(int), or NULL. */
void fnn_set_blas_thread_hooks(void *get, void *set);
void fnn_blas_single_thread(void);

/* The machine's yardsticks (machine.c). The CPU's peak rate in GFLOP/s: float32 fused
 * multiply-adds on the widest vectors it has, run for `seconds` on each of `nthreads`
 * threads and summed; -1 where it cannot be measured (no FMA, not x86-64, no OpenMP).
 * Interruptions: each of `nthreads` threads reads the clock for `seconds` and keeps the
 * gaps longer than threshold_us (the CPU taken away), thread t the first `cap` of them
 * in gaps[t * cap ..] and their number in counts[t]. */
double fnn_peak_gflops(int nthreads, double seconds);
void fnn_interruptions(int nthreads, double seconds, double threshold_us, double *gaps,
                       ptrdiff_t cap, ptrdiff_t *counts);

/* Chunk length for deterministic chunked sums over n elements: depends on n only. */
static inline ptrdiff_t fnn_chunk_size(ptrdiff_t n)
{
    ptrdiff_t c = (n + FNN_MAX_CHUNKS - 1) / FNN_MAX_CHUNKS;
    return c < 4096 ? 4096 : c;
}

/* Counter-based random bits for dropout masks (dropout.c). */
uint32_t fnn_random_bits(uint64_t seed, uint64_t counter, uint64_t index);

#define FNN_DECLARE(T, S)                                                                 \
    /* gemm.c: row-major C (m, n) = alpha op(A) op(B) + beta C through `blas` (a         \
     * column-major ?gemm such as scipy.linalg.cython_blas's), split between threads. */ \
    typedef void (*S(fnn_blas_gemm))(char *, char *, int *, int *, int *, T *, T *,      \
                                     int *, T *, int *, T *, T *, int *);               \
    void S(fnn_gemm)(S(fnn_blas_gemm) blas, int trans_a, int trans_b, ptrdiff_t m,      \
                     ptrdiff_t n, ptrdiff_t k, double alpha, const T *a, ptrdiff_t lda, \
                     const T *b, ptrdiff_t ldb, double beta, T *c, ptrdiff_t ldc);      \
    /* dense.c: y = act(z + bias); z gets the bias added in place unless y aliases z. */ \
    /* alpha, beta: the activation's parameters (generic/act_math.h). */                 \
    void S(fnn_bias_act)(int act, T alpha, T beta, ptrdiff_t rows, ptrdiff_t cols,     \
                         const T *bias, T *z, T *y);                                    \
    /* dense.c: gz = gy * act'(z, y); gbias += column sums of gz (gbias may be NULL;    \
     * then scratch, FNN_COLSUM_SCRATCH(cols) doubles, is unused; gz may be NULL when    \
     * only the sums are wanted). */                                                     \
    void S(fnn_act_backward)(int act, T alpha, T beta, ptrdiff_t rows, ptrdiff_t cols, \
                             const T *z, const T *y, const T *gy, T *gz, T *gbias,      \
                             double *scratch);                                          \
    /* batchnorm.c: batch norm of x with layout (outer, C, inner), per channel; scratch: \
     * FNN_COLSUM_SCRATCH(2 * C) doubles. */                                            \
    void S(fnn_bn_forward_train)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,         \
                                 const T *x, const T *gamma, const T *beta, double eps, \
                                 double momentum, T *running_mean, T *running_var,      \
                                 T *y, T *save_mean, T *save_invstd, double *scratch);  \
    void S(fnn_bn_forward_eval)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,          \
                                const T *x, const T *gamma, const T *beta,              \
                                const T *mean, const T *var, double eps, T *y);         \
    void S(fnn_bn_backward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,              \
                            int batch_stats, const T *x, const T *gy, const T *gamma,   \
                            const T *mean, const T *invstd, T *gx, T *ggamma,           \
                            T *gbeta, double *scratch);                                 \
    /* batchnorm.c: batch norm (batch statistics) -> ReLU fused on (outer, C, inner);   \
     * forward writes the affine y = relu(x * scale + shift), C values each, from which  \
     * the backward takes the ReLU's derivative; scratch as above. */                   \
    void S(fnn_bn_relu_forward_train)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,    \
                                      const T *x, const T *gamma, const T *beta,        \
                                      double eps, double momentum, T *running_mean,     \
                                      T *running_var, T *y, T *save_mean,               \
                                      T *save_invstd, T *scale, T *shift,               \
                                      double *scratch);                                 \
    void S(fnn_bn_relu_backward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,         \
                                 const T *x, const T *gy, const T *gamma,               \
                                 const T *mean, const T *invstd, const T *scale,        \
                                 const T *shift, T *gx, T *ggamma, T *gbeta,            \
                                 double *scratch);                                      \
    /* batchnorm.c: BatchNorm1d -> ReLU -> Dropout fused ((N, C), training); mask NULL  \
     * without dropout; scale/shift (C each) carry the affine from forward to backward. */ \
    void S(fnn_bn_relu_dropout_train)(ptrdiff_t N, ptrdiff_t C, const T *x,             \
                                      const T *gamma, const T *beta, double eps,        \
                                      double momentum, T *running_mean, T *running_var, \
                                      T *y, T *save_mean, T *save_invstd, T *scale,     \
                                      T *shift, uint8_t *mask, double p, double dscale, \
                                      uint64_t seed, uint64_t counter, uint64_t offset, \
                                      double *scratch);                                 \
    void S(fnn_bn_relu_dropout_backward)(ptrdiff_t N, ptrdiff_t C, const T *x,          \
                                         const T *gy, const T *gamma, const T *mean,    \
                                         const T *invstd, const T *scale,               \
                                         const T *shift, const uint8_t *mask,           \
                                         double dscale, T *gx, T *ggamma, T *gbeta,     \
                                         double *scratch);                              \
    /* rownorm.c: row norm (LayerNorm, GroupNorm, InstanceNorm) of x (R, D). */         \
    void S(fnn_rownorm_forward)(ptrdiff_t R, ptrdiff_t D, ptrdiff_t groups,             \
                                ptrdiff_t inner, const T *x, const T *w, const T *b,    \
                                double eps, T *y, T *mean, T *invstd);                  \
    void S(fnn_rownorm_backward)(ptrdiff_t R, ptrdiff_t D, ptrdiff_t groups,            \
                                 ptrdiff_t inner, const T *x, const T *gy, const T *w,  \
                                 const T *mean, const T *invstd, T *gx, T *gw, T *gb);  \
    /* weightnorm.c: weight normalisation w = g * v / |v| over the rows of v. */        \
    void S(fnn_weight_norm_forward)(ptrdiff_t rows, ptrdiff_t cols, const T *v,         \
                                    const T *g, T *w, T *norms);                        \
    void S(fnn_weight_norm_backward)(ptrdiff_t rows, ptrdiff_t cols, const T *v,        \
                                     const T *g, const T *norms, const T *gw, T *gv,    \
                                     T *gg);                                            \
    /* activations.c */                                                                  \
    void S(fnn_prelu_forward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,            \
                              const T *x, const T *a, ptrdiff_t nparam, T *y);          \
    /* scratch: FNN_COLSUM_SCRATCH(C) doubles (used for (N, C) input with C slopes) */   \
    void S(fnn_prelu_backward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,           \
                               const T *x, const T *gy, const T *a, ptrdiff_t nparam,   \
                               T *gx, T *ga, double *scratch);                          \
    /* activations.c: y = max(a + b, 0), n values (y may be a or b) */                  \
    void S(fnn_add_relu)(ptrdiff_t n, const T *a, const T *b, T *y);                    \
    void S(fnn_maxout_forward)(ptrdiff_t rows, ptrdiff_t units, ptrdiff_t pieces,       \
                               const T *z, T *y, uint8_t *idx);                         \
    void S(fnn_maxout_backward)(ptrdiff_t rows, ptrdiff_t units, ptrdiff_t pieces,      \
                                const T *gy, const uint8_t *idx, T *gz);                \
    void S(fnn_softmax_forward)(ptrdiff_t rows, ptrdiff_t cols, const T *x, T *y);      \
    void S(fnn_softmax_backward)(ptrdiff_t rows, ptrdiff_t cols, const T *y,            \
                                 const T *gy, T *gx);                                   \
    void S(fnn_rbf_forward)(ptrdiff_t rows, ptrdiff_t C, const T *xsq, const T *csq,    \
                            const T *width, T *xc_d2, T *y);                            \
    void S(fnn_rbf_backward)(ptrdiff_t rows, ptrdiff_t C, const T *d2, const T *y,      \
                             const T *gy, const T *width, T *gd2, T *gsum, T *grow,     \
                             T *gwidth);                                                \
    /* dropout.c: kept values are multiplied by scale. */                                \
    void S(fnn_dropout_forward)(ptrdiff_t n, const T *x, T *y, uint8_t *mask, double p, \
                                double scale, uint64_t seed, uint64_t counter,          \
                                uint64_t offset);                                       \
    void S(fnn_dropout_backward)(ptrdiff_t n, const T *gy, const uint8_t *mask,         \
                                 double scale, T *gx);                                  \
    /* loss.c: each returns the mean loss; grad (may be NULL) gets d(mean loss)/dpred. */ \
    double S(fnn_softmax_xent)(ptrdiff_t rows, ptrdiff_t cols, const T *logits,         \
                               const int64_t *labels, double smoothing, T *grad,        \
                               double *row_loss);                                       \
    double S(fnn_mse)(ptrdiff_t n, const T *pred, const T *target, T *grad);            \
    double S(fnn_mae)(ptrdiff_t n, const T *pred, const T *target, T *grad);            \
    void S(fnn_pointwise_loss)(int kind, ptrdiff_t n, const T *pred, const T *target,   \
                               double param, const T *pos_weight, ptrdiff_t pw_len,     \
                               T *loss, T *grad);                                       \
    /* optim.c: one fused pass over flat parameter, gradient and state buffers. */      \
    void S(fnn_sgd_step)(ptrdiff_t n, T *param, const T *grad, T *buf, double lr,       \
                         double momentum, double dampening, double weight_decay,        \
                         int nesterov, int first_step);                                 \
    void S(fnn_adam_step)(ptrdiff_t n, T *param, const T *grad, T *exp_avg,             \
                          T *exp_avg_sq, T *max_exp_avg_sq, double lr, double beta1,    \
                          double beta2, double eps, double weight_decay,                \
                          int decoupled, double bias_correction1,                      \
                          double bias_correction2_sqrt);                                \
    void S(fnn_adagrad_step)(ptrdiff_t n, T *param, const T *grad, T *state_sum,        \
                             double clr, double weight_decay, double eps);              \
    void S(fnn_rmsprop_step)(ptrdiff_t n, T *param, const T *grad, T *square_avg,       \
                             T *grad_avg, T *momentum_buffer, double lr, double alpha,  \
                             double eps, double weight_decay, double momentum);         \
    void S(fnn_adadelta_step)(ptrdiff_t n, T *param, const T *grad, T *square_avg,      \
                              T *acc_delta, double lr, double rho, double eps,          \
                              double weight_decay);                                     \
    void S(fnn_adamax_step)(ptrdiff_t n, T *param, const T *grad, T *exp_avg,           \
                            T *exp_inf, double clr, double beta1, double beta2,         \
                            double eps, double weight_decay);                           \
    void S(fnn_nadam_step)(ptrdiff_t n, T *param, const T *grad, T *exp_avg,            \
                           T *exp_avg_sq, double lr, double beta1, double beta2,        \
                           double eps, double weight_decay, int decoupled,              \
                           double bias_correction2, double coef_grad, double coef_avg); \
    /* optim.c: sum of squares (for clipping by global norm) and in-place scaling. */   \
    double S(fnn_sumsq)(ptrdiff_t n, const T *x);                                       \
    void S(fnn_scale)(ptrdiff_t n, T *x, double s);                                     \
    void S(fnn_zero)(ptrdiff_t n, T *x);                                                \
    /* optim.c: L1/L2 penalty; returns it and adds its gradient to grad. */              \
    double S(fnn_penalty)(ptrdiff_t n, const T *w, T *grad, double l1, double l2);

#define FNN_S32(name) name##_f32
#define FNN_S64(name) name##_f64
FNN_DECLARE(float, FNN_S32)
FNN_DECLARE(double, FNN_S64)
#undef FNN_S32
#undef FNN_S64

#endif
