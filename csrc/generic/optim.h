/* Generic body of optim.c; see instantiate.h for T and S().
 *
 * Each optimizer is one pass over its flat buffers: a per-element update written as an
 * always-inline function whose option flags are constants at each call site (so every
 * variant vectorises), a chunk worker with AVX2 clones, and a driver that splits the
 * buffer between threads. The formulas are torch.optim's, operation for operation. */
#include "reduce.h"

#define FNN_INLINE static inline __attribute__((always_inline))

/* ---- SGD --------------------------------------------------------------------------
 *   g = grad + wd * p
 *   b = g  (first step)  |  b = momentum * b + (1 - dampening) * g
 *   g = g + momentum * b  (Nesterov)  |  g = b  (momentum)
 *   p = p - lr * g
 * buf is NULL when momentum == 0. */
static FNN_CLONES void S(sgd_chunk)(ptrdiff_t n, T *p, const T *grad, T *buf, T lr, T mom,
                                    T damp, T wd, int nesterov, int first)
{
    if (!buf) {
#pragma omp simd
        for (ptrdiff_t k = 0; k < n; k++) p[k] -= lr * (grad[k] + wd * p[k]);
        return;
    }
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) {
        T g = grad[k] + wd * p[k];
        T b = first ? g : mom * buf[k] + ((T)1 - damp) * g;
        buf[k] = b;
        p[k] -= lr * (nesterov ? g + mom * b : b);
    }
}

void S(fnn_sgd_step)(ptrdiff_t n, T *param, const T *grad, T *buf, double lr,
                     double momentum, double dampening, double weight_decay, int nesterov,
                     int first_step)
{
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(sgd_chunk)(hi - lo, param + lo, grad + lo, buf ? buf + lo : NULL,
                                    (T)lr, (T)momentum, (T)dampening, (T)weight_decay,
                                    nesterov, first_step));
}

/* ---- Adam / AdamW -----------------------------------------------------------------
 *   p = p * (1 - lr * wd)             decoupled (AdamW)
 *   g = grad + wd * p                 coupled L2 (Adam)
 *   m = m + (1 - beta1) * (g - m)     (torch's lerp)
 *   v = beta2 * v + (1 - beta2) * g^2
 *   vmax = max(vmax, v), v^ = vmax    (amsgrad; else v^ = v)
 *   p = p - lr / bc1 * m / (sqrt(v^) / sqrt(bc2) + eps),  bc_i = 1 - beta_i^t
 * max_exp_avg_sq is NULL without amsgrad. */
/* The step shared by Adam and NAdam for element k: weight decay (decoupled, as a
 * factor on p, or coupled, added to the gradient), then both moments. Returns the
 * decayed parameter; *g, *mk and *vk receive the gradient and the new moments. */
FNN_INLINE T S(adam_moments)(ptrdiff_t k, T *p, const T *grad, T *m, T *v, T b1c, T beta2,
                             T b2c, T wd, T decay, T *g, T *mk, T *vk)
{
    T pk = p[k] * decay;
    *g = grad[k] + wd * pk;
    *mk = m[k] + b1c * (*g - m[k]);
    *vk = beta2 * v[k] + b2c * *g * *g;
    m[k] = *mk;
    v[k] = *vk;
    return pk;
}

FNN_INLINE void S(adam_elem)(ptrdiff_t k, int ams, T *p, const T *grad, T *m, T *v, T *vmax,
                             T step_size, T b1c, T beta2, T b2c, T eps, T wd, T decay,
                             T bc2_sqrt)
{
    T g, mk, vk;
    T pk = S(adam_moments)(k, p, grad, m, v, b1c, beta2, b2c, wd, decay, &g, &mk, &vk);
    if (ams) {
        vk = vmax[k] > vk ? vmax[k] : vk;
        vmax[k] = vk;
    }
    p[k] = pk - step_size * (mk / (SQRT(vk) / bc2_sqrt + eps));
}

static FNN_CLONES void S(adam_chunk)(ptrdiff_t n, T *p, const T *grad, T *m, T *v, T *vmax,
                                     T step_size, T b1c, T beta2, T b2c, T eps, T wd,
                                     T decay, T bc2_sqrt)
{
    if (vmax) {
#pragma omp simd
        for (ptrdiff_t k = 0; k < n; k++)
            S(adam_elem)(k, 1, p, grad, m, v, vmax, step_size, b1c, beta2, b2c, eps, wd,
                         decay, bc2_sqrt);
    } else {
#pragma omp simd
        for (ptrdiff_t k = 0; k < n; k++)
            S(adam_elem)(k, 0, p, grad, m, v, vmax, step_size, b1c, beta2, b2c, eps, wd,
                         decay, bc2_sqrt);
    }
}

void S(fnn_adam_step)(ptrdiff_t n, T *param, const T *grad, T *exp_avg, T *exp_avg_sq,
                      T *max_exp_avg_sq, double lr, double beta1, double beta2, double eps,
                      double weight_decay, int decoupled, double bias_correction1,
                      double bias_correction2_sqrt)
{
    T decay = decoupled ? (T)(1.0 - lr * weight_decay) : (T)1;
    T wd = decoupled ? (T)0 : (T)weight_decay;
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(adam_chunk)(hi - lo, param + lo, grad + lo, exp_avg + lo,
                                     exp_avg_sq + lo,
                                     max_exp_avg_sq ? max_exp_avg_sq + lo : NULL,
                                     (T)(lr / bias_correction1), (T)(1.0 - beta1), (T)beta2,
                                     (T)(1.0 - beta2), (T)eps, wd, decay,
                                     (T)bias_correction2_sqrt));
}

/* ---- Adagrad ----------------------------------------------------------------------
 *   g = grad + wd * p
 *   s = s + g^2
 *   p = p - clr * g / (sqrt(s) + eps),  clr = lr / (1 + (t - 1) * lr_decay) */
static FNN_CLONES void S(adagrad_chunk)(ptrdiff_t n, T *p, const T *grad, T *sum, T clr,
                                        T wd, T eps)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) {
        T g = grad[k] + wd * p[k];
        T s = sum[k] + g * g;
        sum[k] = s;
        p[k] -= clr * (g / (SQRT(s) + eps));
    }
}

void S(fnn_adagrad_step)(ptrdiff_t n, T *param, const T *grad, T *state_sum, double clr,
                         double weight_decay, double eps)
{
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(adagrad_chunk)(hi - lo, param + lo, grad + lo, state_sum + lo,
                                        (T)clr, (T)weight_decay, (T)eps));
}

/* ---- RMSprop ----------------------------------------------------------------------
 *   g = grad + wd * p
 *   s = alpha * s + (1 - alpha) * g^2
 *   centered:  a = a + (1 - alpha) * (g - a),  d = sqrt(s - a^2) + eps
 *   otherwise: d = sqrt(s) + eps
 *   momentum:  b = momentum * b + g / d,  p = p - lr * b
 *   otherwise: p = p - lr * g / d
 * grad_avg is NULL unless centered, buf NULL unless momentum > 0. */
FNN_INLINE void S(rmsprop_elem)(ptrdiff_t k, int centered, int with_mom, T *p,
                                const T *grad, T *sq, T *ga, T *buf, T lr, T alpha,
                                T alpha_c, T eps, T wd, T mom)
{
    T g = grad[k] + wd * p[k];
    T s = alpha * sq[k] + alpha_c * g * g;
    sq[k] = s;
    T d;
    if (centered) {
        T a = ga[k] + alpha_c * (g - ga[k]);
        ga[k] = a;
        d = SQRT(s - a * a) + eps;
    } else {
        d = SQRT(s) + eps;
    }
    if (with_mom) {
        T b = mom * buf[k] + g / d;
        buf[k] = b;
        p[k] -= lr * b;
    } else {
        p[k] -= lr * (g / d);
    }
}

#define FNN_RMSPROP_LOOP(C, M)                                                           \
    _Pragma("omp simd") for (ptrdiff_t k = 0; k < n; k++)                                \
        S(rmsprop_elem)(k, C, M, p, grad, sq, ga, buf, lr, alpha, alpha_c, eps, wd, mom)

static FNN_CLONES void S(rmsprop_chunk)(ptrdiff_t n, T *p, const T *grad, T *sq, T *ga,
                                        T *buf, T lr, T alpha, T alpha_c, T eps, T wd,
                                        T mom)
{
    if (ga && buf)
        FNN_RMSPROP_LOOP(1, 1);
    else if (ga)
        FNN_RMSPROP_LOOP(1, 0);
    else if (buf)
        FNN_RMSPROP_LOOP(0, 1);
    else
        FNN_RMSPROP_LOOP(0, 0);
}
#undef FNN_RMSPROP_LOOP

void S(fnn_rmsprop_step)(ptrdiff_t n, T *param, const T *grad, T *square_avg, T *grad_avg,
                         T *momentum_buffer, double lr, double alpha, double eps,
                         double weight_decay, double momentum)
{
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(rmsprop_chunk)(hi - lo, param + lo, grad + lo, square_avg + lo,
                                        grad_avg ? grad_avg + lo : NULL,
                                        momentum_buffer ? momentum_buffer + lo : NULL,
                                        (T)lr, (T)alpha, (T)(1.0 - alpha), (T)eps,
                                        (T)weight_decay, (T)momentum));
}

/* ---- Adadelta ---------------------------------------------------------------------
 *   g = grad + wd * p
 *   s = rho * s + (1 - rho) * g^2
 *   d = sqrt(u + eps) / sqrt(s + eps) * g
 *   u = rho * u + (1 - rho) * d^2
 *   p = p - lr * d */
static FNN_CLONES void S(adadelta_chunk)(ptrdiff_t n, T *p, const T *grad, T *sq, T *acc,
                                         T lr, T rho, T rho_c, T eps, T wd)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) {
        T g = grad[k] + wd * p[k];
        T s = rho * sq[k] + rho_c * g * g;
        sq[k] = s;
        T d = SQRT(acc[k] + eps) / SQRT(s + eps) * g;
        acc[k] = rho * acc[k] + rho_c * d * d;
        p[k] -= lr * d;
    }
}

void S(fnn_adadelta_step)(ptrdiff_t n, T *param, const T *grad, T *square_avg,
                          T *acc_delta, double lr, double rho, double eps,
                          double weight_decay)
{
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(adadelta_chunk)(hi - lo, param + lo, grad + lo, square_avg + lo,
                                         acc_delta + lo, (T)lr, (T)rho, (T)(1.0 - rho),
                                         (T)eps, (T)weight_decay));
}

/* ---- Adamax -----------------------------------------------------------------------
 *   g = grad + wd * p
 *   m = m + (1 - beta1) * (g - m)
 *   u = max(beta2 * u, |g| + eps)
 *   p = p - lr / (1 - beta1^t) * m / u */
static FNN_CLONES void S(adamax_chunk)(ptrdiff_t n, T *p, const T *grad, T *m, T *u, T clr,
                                       T b1c, T beta2, T eps, T wd)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) {
        T g = grad[k] + wd * p[k];
        T mk = m[k] + b1c * (g - m[k]);
        T a = beta2 * u[k], b = FABS(g) + eps;
        T uk = a > b ? a : b;
        m[k] = mk;
        u[k] = uk;
        p[k] -= clr * (mk / uk);
    }
}

void S(fnn_adamax_step)(ptrdiff_t n, T *param, const T *grad, T *exp_avg, T *exp_inf,
                        double clr, double beta1, double beta2, double eps,
                        double weight_decay)
{
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(adamax_chunk)(hi - lo, param + lo, grad + lo, exp_avg + lo,
                                       exp_inf + lo, (T)clr, (T)(1.0 - beta1), (T)beta2,
                                       (T)eps, (T)weight_decay));
}

/* ---- NAdam ------------------------------------------------------------------------
 *   p = p * (1 - lr * wd)  (decoupled)  |  g = grad + wd * p
 *   m = m + (1 - beta1) * (g - m)
 *   v = beta2 * v + (1 - beta2) * g^2
 *   d = sqrt(v / bc2) + eps
 *   p = p + c_g * g / d + c_m * m / d
 * with c_g = -lr (1 - mu_t) / (1 - prod_{i<=t} mu_i), c_m = -lr mu_{t+1} /
 * (1 - prod_{i<=t+1} mu_i), mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay)),
 * computed by the caller. */
static FNN_CLONES void S(nadam_chunk)(ptrdiff_t n, T *p, const T *grad, T *m, T *v,
                                      T b1c, T beta2, T b2c, T bc2, T eps, T wd, T decay,
                                      T c_g, T c_m)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) {
        T g, mk, vk;
        T pk = S(adam_moments)(k, p, grad, m, v, b1c, beta2, b2c, wd, decay, &g, &mk, &vk);
        T d = SQRT(vk / bc2) + eps;
        pk += c_g * (g / d);
        p[k] = pk + c_m * (mk / d);
    }
}

void S(fnn_nadam_step)(ptrdiff_t n, T *param, const T *grad, T *exp_avg, T *exp_avg_sq,
                       double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled, double bias_correction2,
                       double coef_grad, double coef_avg)
{
    T decay = decoupled ? (T)(1.0 - lr * weight_decay) : (T)1;
    T wd = decoupled ? (T)0 : (T)weight_decay;
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(nadam_chunk)(hi - lo, param + lo, grad + lo, exp_avg + lo,
                                      exp_avg_sq + lo, (T)(1.0 - beta1), (T)beta2,
                                      (T)(1.0 - beta2), (T)bias_correction2, (T)eps, wd,
                                      decay, (T)coef_grad, (T)coef_avg));
}

/* ---- Gradient clipping ------------------------------------------------------------ */
static FNN_CLONES double S(sumsq_chunk)(ptrdiff_t n, const T *x, const T *unused, T *out,
                                        T s0, T s1)
{
    (void)unused;
    (void)out;
    (void)s0;
    (void)s1;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t k = 0; k < n; k++) s += (double)x[k] * x[k];
    return s;
}

/* sum_k x[k]^2 in double, the same for any thread count. */
double S(fnn_sumsq)(ptrdiff_t n, const T *x)
{
    return S(chunked_sum)(S(sumsq_chunk), n, x, NULL, NULL, (T)0, (T)0);
}

static FNN_CLONES void S(scale_chunk)(ptrdiff_t n, T *x, T s)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) x[k] *= s;
}

/* x *= s. */
void S(fnn_scale)(ptrdiff_t n, T *x, double s)
{
    FNN_PARALLEL_RANGE(n, lo, hi, S(scale_chunk)(hi - lo, x + lo, (T)s));
}

/* x = 0 (zero_grad), in parallel for large buffers. */
void S(fnn_zero)(ptrdiff_t n, T *x)
{
    FNN_PARALLEL_RANGE(n, lo, hi, memset(x + lo, 0, (size_t)(hi - lo) * sizeof(T)));
}

/* ---- L1 / L2 penalties --------------------------------------------------------- */
static FNN_CLONES double S(penalty_chunk)(ptrdiff_t n, const T *w, const T *unused, T *g,
                                          T l1, T l2)
{
    (void)unused;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t k = 0; k < n; k++) {
        T sign = w[k] > 0 ? (T)1 : (w[k] < 0 ? (T)-1 : (T)0);
        g[k] += l1 * sign + (T)2 * l2 * w[k];
        s += (double)l1 * FABS(w[k]) + (double)l2 * w[k] * w[k];
    }
    return s;
}

/* Adds d/dw of l1 * sum|w| + l2 * sum w^2 to grad (sign(0) = 0) and returns the
 * penalty, the same for any thread count. */
double S(fnn_penalty)(ptrdiff_t n, const T *w, T *grad, double l1, double l2)
{
    return S(chunked_sum)(S(penalty_chunk), n, w, NULL, grad, (T)l1, (T)l2);
}
