/* Generic body of optim.c; see instantiate.h for T and S(). */

/* SGD with momentum (torch.optim.SGD):
 *   g = grad + wd * p
 *   b = g                              on the first step
 *   b = momentum * b + (1 - dampening) * g   afterwards
 *   g = g + momentum * b  (Nesterov)   or   g = b
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
    int nt = fnn_threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        ptrdiff_t lo, hi;
        fnn_split(n, t, nt, &lo, &hi);
        S(sgd_chunk)(hi - lo, param + lo, grad + lo, buf ? buf + lo : NULL, (T)lr,
                     (T)momentum, (T)dampening, (T)weight_decay, nesterov, first_step);
    }
}

/* Adam / AdamW (torch.optim.Adam, torch.optim.AdamW), step t:
 *   p = p * (1 - lr * wd)             decoupled (AdamW)
 *   g = grad + wd * p                 coupled L2 (Adam)
 *   m = m + (1 - beta1) * (g - m)     (torch's lerp)
 *   v = beta2 * v + (1 - beta2) * g^2
 *   vmax = max(vmax, v), v^ = vmax    (amsgrad; else v^ = v)
 *   p = p - lr / bc1 * m / (sqrt(v^) / sqrt(bc2) + eps),  bc_i = 1 - beta_i^t
 * max_exp_avg_sq is NULL without amsgrad. */
/* One Adam update of element k; `ams` is a compile-time constant at each call site so
 * that both variants vectorise. */
static inline __attribute__((always_inline)) void S(adam_elem)(
    ptrdiff_t k, int ams, T *p, const T *grad, T *m, T *v, T *vmax, T step_size, T b1c,
    T beta2, T b2c, T eps, T wd, T decay, T bc2_sqrt)
{
    T pk = p[k] * decay;
    T g = grad[k] + wd * pk;
    T mk = m[k] + b1c * (g - m[k]);
    T vk = beta2 * v[k] + b2c * g * g;
    m[k] = mk;
    v[k] = vk;
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
    int nt = fnn_threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        ptrdiff_t lo, hi;
        fnn_split(n, t, nt, &lo, &hi);
        S(adam_chunk)(hi - lo, param + lo, grad + lo, exp_avg + lo, exp_avg_sq + lo,
                      max_exp_avg_sq ? max_exp_avg_sq + lo : NULL,
                      (T)(lr / bias_correction1), (T)(1.0 - beta1), (T)beta2,
                      (T)(1.0 - beta2), (T)eps, wd, decay,
                      (T)bias_correction2_sqrt);
    }
}
