/* Generic body of norm.c; see instantiate.h for T and S().
 *
 * Work is split into blocks of FNN_COL_BLOCK columns. A block's statistics are sums
 * over all rows in row order, accumulated in double, so they do not depend on the
 * thread count; the block's second pass then re-reads x from cache. Each kernel is a
 * per-block function and a driver that hands blocks to threads. */

/* Mean and biased variance of columns [j0, j1): one pass of sums shifted by the first
 * row (which keeps the sum of squares free of cancellation for data far from 0). */
static FNN_CLONES void S(bn_stats_block)(ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0,
                                         ptrdiff_t j1, const T *x, double *mean,
                                         double *var)
{
    double shift[FNN_COL_BLOCK], s1[FNN_COL_BLOCK] = {0}, s2[FNN_COL_BLOCK] = {0};
    ptrdiff_t w = j1 - j0;
    for (ptrdiff_t j = 0; j < w; j++) shift[j] = x[j0 + j];
    for (ptrdiff_t i = 0; i < rows; i++) {
        const T *xr = x + i * cols + j0;
#pragma omp simd
        for (ptrdiff_t j = 0; j < w; j++) {
            double d = (double)xr[j] - shift[j];
            s1[j] += d;
            s2[j] += d * d;
        }
    }
    for (ptrdiff_t j = 0; j < w; j++) {
        double m = s1[j] / (double)rows;
        double v = s2[j] / (double)rows - m * m;
        mean[j] = shift[j] + m;
        var[j] = v > 0 ? v : 0;
    }
}

/* y = x * scale + shift on columns [j0, j1) (scale and shift indexed from j0). */
static FNN_CLONES void S(bn_affine_block)(ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0,
                                          ptrdiff_t j1, const T *x, const T *scale,
                                          const T *shift, T *y)
{
    ptrdiff_t w = j1 - j0;
    for (ptrdiff_t i = 0; i < rows; i++) {
        const T *xr = x + i * cols + j0;
        T *yr = y + i * cols + j0;
#pragma omp simd
        for (ptrdiff_t j = 0; j < w; j++) yr[j] = xr[j] * scale[j] + shift[j];
    }
}

/* scale = gamma * invstd, shift = beta - mean * scale for columns [j0, j1). */
static void S(bn_scale_shift)(ptrdiff_t j0, ptrdiff_t j1, const double *mean,
                              const double *invstd, const T *gamma, const T *beta, T *scale,
                              T *shift)
{
    for (ptrdiff_t j = 0; j < j1 - j0; j++) {
        double g = gamma ? (double)gamma[j0 + j] : 1.0;
        double bt = beta ? (double)beta[j0 + j] : 0.0;
        scale[j] = (T)(invstd[j] * g);
        shift[j] = (T)(bt - mean[j] * invstd[j] * g);
    }
}

static void S(bn_train_block)(ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0, ptrdiff_t j1,
                              const T *x, const T *gamma, const T *beta, double eps,
                              double momentum, T *running_mean, T *running_var, T *y,
                              T *save_mean, T *save_invstd)
{
    double mean[FNN_COL_BLOCK], var[FNN_COL_BLOCK], invstd[FNN_COL_BLOCK];
    T scale[FNN_COL_BLOCK], shift[FNN_COL_BLOCK];
    /* Running variance uses the unbiased estimate m/(m-1) * var (as torch does). */
    double unbias = rows > 1 ? (double)rows / (double)(rows - 1) : 1.0;
    S(bn_stats_block)(rows, cols, j0, j1, x, mean, var);
    for (ptrdiff_t j = 0; j < j1 - j0; j++) {
        invstd[j] = 1.0 / sqrt(var[j] + eps);
        save_mean[j0 + j] = (T)mean[j];
        save_invstd[j0 + j] = (T)invstd[j];
        if (running_mean) {
            T *rm = running_mean + j0 + j, *rv = running_var + j0 + j;
            *rm = (T)((1.0 - momentum) * *rm + momentum * mean[j]);
            *rv = (T)((1.0 - momentum) * *rv + momentum * var[j] * unbias);
        }
    }
    S(bn_scale_shift)(j0, j1, mean, invstd, gamma, beta, scale, shift);
    S(bn_affine_block)(rows, cols, j0, j1, x, scale, shift, y);
}

static void S(bn_eval_block)(ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0, ptrdiff_t j1,
                             const T *x, const T *gamma, const T *beta, const T *mean_in,
                             const T *var, double eps, T *y)
{
    double mean[FNN_COL_BLOCK], invstd[FNN_COL_BLOCK];
    T scale[FNN_COL_BLOCK], shift[FNN_COL_BLOCK];
    for (ptrdiff_t j = 0; j < j1 - j0; j++) {
        mean[j] = (double)mean_in[j0 + j];
        invstd[j] = 1.0 / sqrt((double)var[j0 + j] + eps);
    }
    S(bn_scale_shift)(j0, j1, mean, invstd, gamma, beta, scale, shift);
    S(bn_affine_block)(rows, cols, j0, j1, x, scale, shift, y);
}

/* Backward of y = gamma * xhat + beta, xhat = (x - mean) * invstd.
 * With batch statistics (training), mean and invstd depend on x:
 *   gx = gamma * invstd * (gy - mean_i(gy) - xhat * mean_i(gy * xhat))
 * with fixed (running) statistics: gx = gamma * invstd * gy.
 * ggamma += sum_i gy * xhat, gbeta += sum_i gy (each skipped when NULL). */
static FNN_CLONES void S(bn_backward_block)(ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0,
                                            ptrdiff_t j1, int batch_stats, const T *x,
                                            const T *gy, const T *gamma, const T *mean,
                                            const T *invstd, T *gx, T *ggamma, T *gbeta)
{
    ptrdiff_t w = j1 - j0;
    double sg[FNN_COL_BLOCK] = {0}, sgx[FNN_COL_BLOCK] = {0};
    T mu[FNN_COL_BLOCK], is[FNN_COL_BLOCK], k[FNN_COL_BLOCK], c0[FNN_COL_BLOCK],
        c1[FNN_COL_BLOCK];
    for (ptrdiff_t j = 0; j < w; j++) {
        mu[j] = mean[j0 + j];
        is[j] = invstd[j0 + j];
    }
    for (ptrdiff_t i = 0; i < rows; i++) {
        const T *xr = x + i * cols + j0, *gr = gy + i * cols + j0;
#pragma omp simd
        for (ptrdiff_t j = 0; j < w; j++) {
            double xh = (double)((xr[j] - mu[j]) * is[j]);
            sg[j] += gr[j];
            sgx[j] += gr[j] * xh;
        }
    }
    double inv_n = 1.0 / (double)rows;
    for (ptrdiff_t j = 0; j < w; j++) {
        double g = gamma ? (double)gamma[j0 + j] : 1.0;
        k[j] = (T)(g * is[j]);
        /* gx = k * (gy - c0 - xhat * c1) */
        c0[j] = batch_stats ? (T)(sg[j] * inv_n) : (T)0;
        c1[j] = batch_stats ? (T)(sgx[j] * inv_n) : (T)0;
        if (ggamma) ggamma[j0 + j] += (T)sgx[j];
        if (gbeta) gbeta[j0 + j] += (T)sg[j];
    }
    for (ptrdiff_t i = 0; i < rows; i++) {
        const T *xr = x + i * cols + j0, *gr = gy + i * cols + j0;
        T *or_ = gx + i * cols + j0;
#pragma omp simd
        for (ptrdiff_t j = 0; j < w; j++) {
            T xh = (xr[j] - mu[j]) * is[j];
            or_[j] = k[j] * (gr[j] - c0[j] - xh * c1[j]);
        }
    }
}

void S(fnn_bn_forward_train)(ptrdiff_t rows, ptrdiff_t cols, const T *x, const T *gamma,
                             const T *beta, double eps, double momentum, T *running_mean,
                             T *running_var, T *y, T *save_mean, T *save_invstd)
{
    FNN_FOR_COL_BLOCKS(rows, cols,
                       S(bn_train_block)(rows, cols, j0, j1, x, gamma, beta, eps, momentum,
                                         running_mean, running_var, y, save_mean,
                                         save_invstd));
}

void S(fnn_bn_forward_eval)(ptrdiff_t rows, ptrdiff_t cols, const T *x, const T *gamma,
                            const T *beta, const T *mean, const T *var, double eps, T *y)
{
    FNN_FOR_COL_BLOCKS(rows, cols,
                       S(bn_eval_block)(rows, cols, j0, j1, x, gamma, beta, mean, var, eps,
                                        y));
}

void S(fnn_bn_backward)(ptrdiff_t rows, ptrdiff_t cols, int batch_stats, const T *x,
                        const T *gy, const T *gamma, const T *mean, const T *invstd, T *gx,
                        T *ggamma, T *gbeta)
{
    FNN_FOR_COL_BLOCKS(rows, cols,
                       S(bn_backward_block)(rows, cols, j0, j1, batch_stats, x, gy, gamma,
                                            mean, invstd, gx, ggamma, gbeta));
}
