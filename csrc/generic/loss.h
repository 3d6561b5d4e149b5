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
