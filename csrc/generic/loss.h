/* Generic body of loss.c; see instantiate.h for T and S(). */
#include "reduce.h"

/* Softmax cross-entropy of rows [r0, r1), label smoothing eps over K classes:
 *   loss_i = lse_i - (1 - eps) z[i, y_i] - eps/K sum_k z[i, k],  lse_i = log sum_k e^z[i,k]
 *   grad[i, k] = (softmax_k - eps/K - (1 - eps)[k == y_i]) * gscale
 * The row max is subtracted before exponentiating; each exp is computed once and,
 * when a gradient is wanted, kept in grad until the row's sum is known. */
static FNN_CLONES void S(xent_rows)(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t K, const T *z,
                         const int64_t *labels, double eps, T *grad, T gscale,
                         double *row_loss)
{
    double off = eps / (double)K;
    for (ptrdiff_t i = r0; i < r1; i++) {
        const T *zi = z + i * K;
        T mx = zi[0];
        for (ptrdiff_t k = 1; k < K; k++) mx = zi[k] > mx ? zi[k] : mx;
        double sum = 0, zsum = 0;
        if (grad) {
            T *e = grad + i * K;
#pragma omp simd reduction(+ : sum, zsum)
            for (ptrdiff_t k = 0; k < K; k++) {
                e[k] = EXP(zi[k] - mx);
                sum += e[k];
                zsum += zi[k];
            }
        } else {
#pragma omp simd reduction(+ : sum, zsum)
            for (ptrdiff_t k = 0; k < K; k++) {
                sum += EXP(zi[k] - mx);
                zsum += zi[k];
            }
        }
        int64_t y = labels[i];
        double lse = (double)mx + (double)LOG((T)sum); /* logf for float: sum in [1, K] */
        row_loss[i] = lse - (1.0 - eps) * (double)zi[y] - off * zsum;
        if (grad) {
            T *e = grad + i * K;
            T inv = (T)(1.0 / sum) * gscale, o = (T)off * gscale;
#pragma omp simd
            for (ptrdiff_t k = 0; k < K; k++) e[k] = e[k] * inv - o;
            e[y] -= (T)(1.0 - eps) * gscale;
        }
    }
}

/* Mean over rows; row_loss (rows doubles) receives each row's loss, which are then
 * summed in row order so that the mean does not depend on the thread count. */
double S(fnn_softmax_xent)(ptrdiff_t rows, ptrdiff_t cols, const T *logits,
                           const int64_t *labels, double smoothing, T *grad,
                           double *row_loss)
{
    T gscale = (T)(1.0 / (double)rows);
    FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                       S(xent_rows)(lo, hi, cols, logits, labels, smoothing, grad, gscale,
                                    row_loss));
    double s = 0;
    for (ptrdiff_t i = 0; i < rows; i++) s += row_loss[i];
    return s / (double)rows;
}

static FNN_CLONES double S(mse_chunk)(ptrdiff_t n, const T *p, const T *t, T *g, T scale,
                                      T unused)
{
    (void)unused;
    double s = 0;
    if (g) {
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t k = 0; k < n; k++) {
            T d = p[k] - t[k];
            g[k] = scale * d;
            s += (double)d * d;
        }
    } else {
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t k = 0; k < n; k++) {
            T d = p[k] - t[k];
            s += (double)d * d;
        }
    }
    return s;
}

static FNN_CLONES double S(mae_chunk)(ptrdiff_t n, const T *p, const T *t, T *g, T scale,
                                      T unused)
{
    (void)unused;
    double s = 0;
    if (g) {
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t k = 0; k < n; k++) {
            T d = p[k] - t[k];
            g[k] = d > 0 ? scale : (d < 0 ? -scale : (T)0); /* sign(0) = 0, as torch */
            s += FABS(d);
        }
    } else {
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t k = 0; k < n; k++) s += FABS(p[k] - t[k]);
    }
    return s;
}

/* Mean squared error over n elements; grad = 2 (p - t) / n. */
double S(fnn_mse)(ptrdiff_t n, const T *pred, const T *target, T *grad)
{
    return S(chunked_sum)(S(mse_chunk), n, pred, target, grad, (T)(2.0 / (double)n), (T)0) /
           (double)n;
}

/* Mean absolute error over n elements; grad = sign(p - t) / n. */
double S(fnn_mae)(ptrdiff_t n, const T *pred, const T *target, T *grad)
{
    return S(chunked_sum)(S(mae_chunk), n, pred, target, grad, (T)(1.0 / (double)n), (T)0) /
           (double)n;
}

/* Elements [lo, hi) of an elementwise loss l(p, t) and its derivative dl/dp (unreduced:
 * the caller weights and reduces). param is Huber's delta or SmoothL1's beta; BCE's
 * positive-class weights pw (pw_len of them, element k uses pw[k % pw_len]) may be NULL.
 * Each kind has its own loop so that each vectorises. */
static FNN_CLONES void S(pointwise_range)(int kind, ptrdiff_t lo, ptrdiff_t hi, const T *p,
                                           const T *t, T param, const T *pw,
                                           ptrdiff_t pw_len, T *l, T *g)
{
    switch (kind) {
    case FNN_LOSS_MSE:
#pragma omp simd
        for (ptrdiff_t k = lo; k < hi; k++) {
            T d = p[k] - t[k];
            l[k] = d * d;
            g[k] = 2 * d;
        }
        break;
    case FNN_LOSS_L1:
#pragma omp simd
        for (ptrdiff_t k = lo; k < hi; k++) {
            T d = p[k] - t[k];
            l[k] = FABS(d);
            g[k] = d > 0 ? (T)1 : (d < 0 ? (T)-1 : (T)0); /* sign(0) = 0, as torch */
        }
        break;
    case FNN_LOSS_HUBER: /* 0.5 d^2 inside |d| < delta, delta (|d| - delta / 2) outside */
#pragma omp simd
        for (ptrdiff_t k = lo; k < hi; k++) {
            T d = p[k] - t[k], a = FABS(d);
            int in = a < param;
            l[k] = in ? (T)0.5 * d * d : param * (a - (T)0.5 * param);
            g[k] = in ? d : (d > 0 ? param : -param);
        }
        break;
    case FNN_LOSS_SMOOTH_L1: /* Huber / beta; beta = 0 is the L1 loss (as torch) */
        if (param == 0) {
            S(pointwise_range)(FNN_LOSS_L1, lo, hi, p, t, param, pw, pw_len, l, g);
            break;
        }
#pragma omp simd
        for (ptrdiff_t k = lo; k < hi; k++) {
            T d = p[k] - t[k], a = FABS(d);
            int in = a < param;
            l[k] = in ? (T)0.5 * d * d / param : a - (T)0.5 * param;
            g[k] = in ? d / param : (d > 0 ? (T)1 : (T)-1);
        }
        break;
    case FNN_LOSS_BCE_LOGITS:
        /* -w y log s(x) - (1 - y) log(1 - s(x)) = (1 - y) x + (1 + (w - 1) y) softplus(-x),
         * softplus(-x) = log1p(e^-|x|) + max(-x, 0); derivative (1 - y) - (1 + (w-1) y) s(-x)
         * with s(-x) = e^-|x| / (1 + e^-|x|) for x >= 0, 1 / (1 + e^-|x|) otherwise. */
        for (ptrdiff_t k = lo; k < hi; k++) {
            T x = p[k], y = t[k], w = pw ? pw[k % pw_len] : (T)1;
            T e = EXP(-FABS(x)), lw = 1 + (w - 1) * y;
            T sp = LOG1P(e) + (x < 0 ? -x : (T)0);
            T sneg = (x >= 0 ? e : (T)1) / (1 + e);
            l[k] = (1 - y) * x + lw * sp;
            g[k] = (1 - y) - lw * sneg;
        }
        break;
    default:
        break;
    }
}

/* An elementwise loss of n elements, unreduced: loss[k] = l(pred[k], target[k]),
 * grad[k] = dl/dpred[k] (see pointwise_range). Results do not depend on the thread count. */
void S(fnn_pointwise_loss)(int kind, ptrdiff_t n, const T *pred, const T *target, double param,
                           const T *pos_weight, ptrdiff_t pw_len, T *loss, T *grad)
{
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(pointwise_range)(kind, lo, hi, pred, target, (T)param, pos_weight,
                                          pw_len, loss, grad));
}
