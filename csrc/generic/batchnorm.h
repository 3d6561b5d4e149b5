/* Generic body of batchnorm.c (with bn_relu_dropout.h); see instantiate.h for T and S().
 *
 * Batch norm: x has layout (outer, C, inner) - (N, C) for BatchNorm1d, (N, C, H*W)
 * for BatchNorm2d - and each channel is normalised over its outer * inner values.
 * For (N, C) input the statistics are column sums over row chunks (fnn_column_sums),
 * then a pass over the rows applies them; memory is read row by row. With positions
 * (inner > 1) channels are processed in blocks of FNN_COL_BLOCK, each block's
 * statistics pass followed at once by its normalisation pass. Statistics accumulate
 * in double and work is split by data layout (never by thread), so results do not
 * depend on the thread count. */

/* Mean and biased variance of channels [c0, c1), one pass of sums shifted by each
 * channel's first value (no cancellation in the sum of squares for data far from 0). */
static FNN_CLONES void S(bn_stats_block)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                         ptrdiff_t c0, ptrdiff_t c1, const T *x,
                                         double *mean, double *var)
{
    double shift[FNN_COL_BLOCK], s1[FNN_COL_BLOCK] = {0}, s2[FNN_COL_BLOCK] = {0};
    ptrdiff_t w = c1 - c0;
    for (ptrdiff_t c = 0; c < w; c++) shift[c] = x[(c0 + c) * inner];
    for (ptrdiff_t n = 0; n < outer; n++) {
        const T *xn = x + (n * C + c0) * inner;
        if (inner == 1) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < w; c++) {
                double d = (double)xn[c] - shift[c];
                s1[c] += d;
                s2[c] += d * d;
            }
        } else {
            for (ptrdiff_t c = 0; c < w; c++) {
                const T *xc = xn + c * inner;
                double a = 0, b = 0, sh = shift[c];
#pragma omp simd reduction(+ : a, b)
                for (ptrdiff_t k = 0; k < inner; k++) {
                    double d = (double)xc[k] - sh;
                    a += d;
                    b += d * d;
                }
                s1[c] += a;
                s2[c] += b;
            }
        }
    }
    double m = (double)(outer * inner);
    for (ptrdiff_t c = 0; c < w; c++) {
        double mu = s1[c] / m;
        double v = s2[c] / m - mu * mu;
        mean[c] = shift[c] + mu;
        var[c] = v > 0 ? v : 0;
    }
}

/* y = x * scale + shift on channels [c0, c1) (scale and shift indexed from c0), then
 * max(y, 0) with relu (FNN_F_RELU: NaN passes). */
static FNN_CLONES void S(bn_affine_block)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                          ptrdiff_t c0, ptrdiff_t c1, const T *x,
                                          const T *scale, const T *shift, int relu, T *y)
{
    ptrdiff_t w = c1 - c0;
    for (ptrdiff_t n = 0; n < outer; n++) {
        ptrdiff_t off = (n * C + c0) * inner;
        const T *xn = x + off;
        T *yn = y + off;
        if (inner == 1 && relu) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < w; c++)
                yn[c] = FNN_F_RELU(xn[c] * scale[c] + shift[c], 0, 0);
        } else if (inner == 1) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < w; c++) yn[c] = xn[c] * scale[c] + shift[c];
        } else {
            for (ptrdiff_t c = 0; c < w; c++) {
                T sc = scale[c], sh = shift[c];
                const T *xc = xn + c * inner;
                T *yc = yn + c * inner;
                if (relu) {
#pragma omp simd
                    for (ptrdiff_t k = 0; k < inner; k++)
                        yc[k] = FNN_F_RELU(xc[k] * sc + sh, 0, 0);
                } else {
#pragma omp simd
                    for (ptrdiff_t k = 0; k < inner; k++) yc[k] = xc[k] * sc + sh;
                }
            }
        }
    }
}

/* scale = gamma * invstd, shift = beta - mean * scale for channels [c0, c1). */
static void S(bn_scale_shift)(ptrdiff_t c0, ptrdiff_t c1, const double *mean,
                              const double *invstd, const T *gamma, const T *beta, T *scale,
                              T *shift)
{
    for (ptrdiff_t c = 0; c < c1 - c0; c++) {
        double g = gamma ? (double)gamma[c0 + c] : 1.0;
        double bt = beta ? (double)beta[c0 + c] : 0.0;
        scale[c] = (T)(invstd[c] * g);
        shift[c] = (T)(bt - mean[c] * invstd[c] * g);
    }
}

static void S(bn_train_block)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, ptrdiff_t c0,
                              ptrdiff_t c1, const T *x, const T *gamma, const T *beta,
                              double eps, double momentum, T *running_mean, T *running_var,
                              int relu, T *y, T *save_mean, T *save_invstd)
{
    double mean[FNN_COL_BLOCK], var[FNN_COL_BLOCK], invstd[FNN_COL_BLOCK];
    T scale[FNN_COL_BLOCK], shift[FNN_COL_BLOCK];
    /* Running variance uses the unbiased estimate m/(m-1) * var (as torch does). */
    double m = (double)(outer * inner);
    double unbias = m > 1 ? m / (m - 1) : 1.0;
    S(bn_stats_block)(outer, C, inner, c0, c1, x, mean, var);
    for (ptrdiff_t c = 0; c < c1 - c0; c++) {
        invstd[c] = 1.0 / sqrt(var[c] + eps);
        save_mean[c0 + c] = (T)mean[c];
        save_invstd[c0 + c] = (T)invstd[c];
        if (running_mean) {
            T *rm = running_mean + c0 + c, *rv = running_var + c0 + c;
            *rm = (T)((1.0 - momentum) * *rm + momentum * mean[c]);
            *rv = (T)((1.0 - momentum) * *rv + momentum * var[c] * unbias);
        }
    }
    S(bn_scale_shift)(c0, c1, mean, invstd, gamma, beta, scale, shift);
    S(bn_affine_block)(outer, C, inner, c0, c1, x, scale, shift, relu, y);
}

static void S(bn_eval_block)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, ptrdiff_t c0,
                             ptrdiff_t c1, const T *x, const T *gamma, const T *beta,
                             const T *mean_in, const T *var, double eps, T *y)
{
    double mean[FNN_COL_BLOCK], invstd[FNN_COL_BLOCK];
    T scale[FNN_COL_BLOCK], shift[FNN_COL_BLOCK];
    for (ptrdiff_t c = 0; c < c1 - c0; c++) {
        mean[c] = (double)mean_in[c0 + c];
        invstd[c] = 1.0 / sqrt((double)var[c0 + c] + eps);
    }
    S(bn_scale_shift)(c0, c1, mean, invstd, gamma, beta, scale, shift);
    S(bn_affine_block)(outer, C, inner, c0, c1, x, scale, shift, 0, y);
}

/* Backward of y = gamma * xhat + beta, xhat = (x - mean) * invstd, channels [c0, c1).
 * With batch statistics (training), mean and invstd depend on x:
 *   gx = gamma * invstd * (gy - mean(gy) - xhat * mean(gy * xhat))
 * with fixed (running) statistics: gx = gamma * invstd * gy.
 * ggamma += sum gy * xhat, gbeta += sum gy (each skipped when NULL). With a ReLU after
 * the batch norm, y is its output and gy the gradient of y: gy counts where y > 0 only
 * (relu_y NULL: no ReLU). */
#define FNN_BN_GY(g, y, i) ((y) ? ((y)[i] > 0 ? (g)[i] : (T)0) : (g)[i])
static FNN_CLONES void S(bn_backward_block)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                            ptrdiff_t c0, ptrdiff_t c1, int batch_stats,
                                            const T *x, const T *gy, const T *gamma,
                                            const T *mean, const T *invstd,
                                            const T *relu_y, T *gx, T *ggamma, T *gbeta)
{
    ptrdiff_t w = c1 - c0;
    double sg[FNN_COL_BLOCK] = {0}, sgx[FNN_COL_BLOCK] = {0};
    T mu[FNN_COL_BLOCK], is[FNN_COL_BLOCK], k[FNN_COL_BLOCK], a0[FNN_COL_BLOCK],
        a1[FNN_COL_BLOCK];
    for (ptrdiff_t c = 0; c < w; c++) {
        mu[c] = mean[c0 + c];
        is[c] = invstd[c0 + c];
    }
    for (ptrdiff_t n = 0; n < outer; n++) {
        ptrdiff_t off = (n * C + c0) * inner;
        const T *xn = x + off, *gn = gy + off, *yn = relu_y ? relu_y + off : NULL;
        if (inner == 1) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < w; c++) {
                double xh = (double)((xn[c] - mu[c]) * is[c]);
                T g = FNN_BN_GY(gn, yn, c);
                sg[c] += g;
                sgx[c] += g * xh;
            }
        } else {
            for (ptrdiff_t c = 0; c < w; c++) {
                const T *xc = xn + c * inner, *gc = gn + c * inner;
                const T *yc = yn ? yn + c * inner : NULL;
                T m_ = mu[c], i_ = is[c];
                /* sums of FNN_SUM_SPAN values in T's vector lanes, then in double */
                for (ptrdiff_t q0 = 0; q0 < inner; q0 += FNN_SUM_SPAN) {
                    ptrdiff_t q1 = q0 + FNN_SUM_SPAN < inner ? q0 + FNN_SUM_SPAN : inner;
                    T a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
                    for (ptrdiff_t q = q0; q < q1; q++) {
                        T g = FNN_BN_GY(gc, yc, q);
                        a += g;
                        b += g * ((xc[q] - m_) * i_);
                    }
                    sg[c] += a;
                    sgx[c] += b;
                }
            }
        }
    }
    double inv_m = 1.0 / (double)(outer * inner);
    for (ptrdiff_t c = 0; c < w; c++) {
        double g = gamma ? (double)gamma[c0 + c] : 1.0;
        k[c] = (T)(g * is[c]);
        /* gx = k * (gy - a0 - xhat * a1) */
        a0[c] = batch_stats ? (T)(sg[c] * inv_m) : (T)0;
        a1[c] = batch_stats ? (T)(sgx[c] * inv_m) : (T)0;
        if (ggamma) ggamma[c0 + c] += (T)sgx[c];
        if (gbeta) gbeta[c0 + c] += (T)sg[c];
    }
    for (ptrdiff_t n = 0; n < outer; n++) {
        ptrdiff_t off = (n * C + c0) * inner;
        const T *xn = x + off, *gn = gy + off, *yn = relu_y ? relu_y + off : NULL;
        T *on = gx + off;
        if (inner == 1) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < w; c++) {
                T xh = (xn[c] - mu[c]) * is[c];
                on[c] = k[c] * (FNN_BN_GY(gn, yn, c) - a0[c] - xh * a1[c]);
            }
        } else {
            for (ptrdiff_t c = 0; c < w; c++) {
                const T *xc = xn + c * inner, *gc = gn + c * inner;
                const T *yc = yn ? yn + c * inner : NULL;
                T *oc = on + c * inner;
                T m_ = mu[c], i_ = is[c], k_ = k[c], b0 = a0[c], b1 = a1[c];
#pragma omp simd
                for (ptrdiff_t q = 0; q < inner; q++)
                    oc[q] = k_ * (FNN_BN_GY(gc, yc, q) - b0 - (xc[q] - m_) * i_ * b1);
            }
        }
    }
}

/* -- (N, C) input: statistics as column sums over row chunks, then row passes ------ */

struct S(bn_rows_ctx) {
    ptrdiff_t C;
    const T *x, *gy, *mean, *invstd, *shift;
};

/* acc[0..C) += sum (x - shift), acc[C..2C) += sum (x - shift)^2. Four rows at a time:
 * the double accumulators are loaded and stored once per four rows. */
static FNN_CLONES void S(bn_stats_rows)(ptrdiff_t r0, ptrdiff_t r1, double *acc, void *vctx)
{
    struct S(bn_rows_ctx) *c = vctx;
    ptrdiff_t C = c->C, i = r0;
    const T *sh = c->shift;
    for (; i + 4 <= r1; i += 4) {
        const T *x0 = c->x + i * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++) {
            double d0 = (double)x0[j] - sh[j], d1 = (double)x1[j] - sh[j];
            double d2 = (double)x2[j] - sh[j], d3 = (double)x3[j] - sh[j];
            acc[j] += (d0 + d1) + (d2 + d3);
            acc[C + j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
        }
    }
    for (; i < r1; i++) {
        const T *xr = c->x + i * C;
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++) {
            double d = (double)xr[j] - sh[j];
            acc[j] += d;
            acc[C + j] += d * d;
        }
    }
}

/* acc[0..C) += sum gy, acc[C..2C) += sum gy * xhat, four rows at a time. */
static FNN_CLONES void S(bn_grad_rows)(ptrdiff_t r0, ptrdiff_t r1, double *acc, void *vctx)
{
    struct S(bn_rows_ctx) *c = vctx;
    ptrdiff_t C = c->C, i = r0;
    const T *mu = c->mean, *is = c->invstd;
    for (; i + 4 <= r1; i += 4) {
        const T *x0 = c->x + i * C, *g0 = c->gy + i * C;
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++) {
            T ga = g0[j], gb = g0[C + j], gc = g0[2 * C + j], gd = g0[3 * C + j];
            T h0 = (x0[j] - mu[j]) * is[j], h1 = (x0[C + j] - mu[j]) * is[j];
            T h2 = (x0[2 * C + j] - mu[j]) * is[j], h3 = (x0[3 * C + j] - mu[j]) * is[j];
            acc[j] += ((double)ga + gb) + ((double)gc + gd);
            acc[C + j] += ((double)ga * h0 + (double)gb * h1) + ((double)gc * h2 + (double)gd * h3);
        }
    }
    for (; i < r1; i++) {
        const T *xr = c->x + i * C, *gr = c->gy + i * C;
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++) {
            acc[j] += gr[j];
            acc[C + j] += gr[j] * (double)((xr[j] - mu[j]) * is[j]);
        }
    }
}

/* y = x * scale + shift, rows [r0, r1) of an (rows, C) matrix. */
static FNN_CLONES void S(affine_rows)(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, const T *x,
                                      const T *scale, const T *shift, T *y)
{
    for (ptrdiff_t i = r0; i < r1; i++) {
        const T *xr = x + i * C;
        T *yr = y + i * C;
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++) yr[j] = xr[j] * scale[j] + shift[j];
    }
}

/* gx = k * (gy - a0 - xhat * a1), rows [r0, r1). */
static FNN_CLONES void S(bn_gx_rows)(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, const T *x,
                                     const T *gy, const T *mu, const T *is, const T *k,
                                     const T *a0, const T *a1, T *gx)
{
    for (ptrdiff_t i = r0; i < r1; i++) {
        const T *xr = x + i * C, *gr = gy + i * C;
        T *o = gx + i * C;
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++)
            o[j] = k[j] * (gr[j] - a0[j] - (xr[j] - mu[j]) * is[j] * a1[j]);
    }
}

/* T arrays of C elements in the free tail of a FNN_COLSUM_SCRATCH(2C) scratch (room
 * for 4C doubles; three arrays are used). */
#define FNN_SCRATCH_T(scratch, C, i) \
    ((T *)((scratch) + (FNN_ROW_CHUNKS + 1) * 2 * (C)) + (i) * (C))

/* Batch statistics of an (N, C) x: save_mean, save_invstd, the running statistics (if
 * given) and the affine scale/shift that normalise x (y = x * scale + shift). */
static void S(bn_stats_rows_all)(ptrdiff_t N, ptrdiff_t C, const T *x, const T *gamma,
                                 const T *beta, double eps, double momentum,
                                 T *running_mean, T *running_var, T *save_mean,
                                 T *save_invstd, T *scale, T *shift, double *scratch)
{
    T *shift0 = FNN_SCRATCH_T(scratch, C, 0);
    for (ptrdiff_t j = 0; j < C; j++) shift0[j] = x[j]; /* first row: see bn_stats_block */
    struct S(bn_rows_ctx) ctx = {C, x, NULL, NULL, NULL, shift0};
    fnn_column_sums(N, 2 * C, S(bn_stats_rows), &ctx, scratch);
    double m = (double)N, unbias = N > 1 ? m / (m - 1) : 1.0;
    for (ptrdiff_t j = 0; j < C; j++) {
        double mu = scratch[j] / m, v = scratch[C + j] / m - mu * mu;
        v = v > 0 ? v : 0;
        mu += shift0[j];
        double is = 1.0 / sqrt(v + eps);
        double g = gamma ? (double)gamma[j] : 1.0, bt = beta ? (double)beta[j] : 0.0;
        save_mean[j] = (T)mu;
        save_invstd[j] = (T)is;
        scale[j] = (T)(is * g);
        shift[j] = (T)(bt - mu * is * g);
        if (running_mean) {
            running_mean[j] = (T)((1.0 - momentum) * running_mean[j] + momentum * mu);
            running_var[j] = (T)((1.0 - momentum) * running_var[j] + momentum * v * unbias);
        }
    }
}

static void S(bn_train_rows)(ptrdiff_t N, ptrdiff_t C, const T *x, const T *gamma,
                             const T *beta, double eps, double momentum, T *running_mean,
                             T *running_var, T *y, T *save_mean, T *save_invstd,
                             double *scratch)
{
    T *scale = FNN_SCRATCH_T(scratch, C, 1), *shift = FNN_SCRATCH_T(scratch, C, 2);
    S(bn_stats_rows_all)(N, C, x, gamma, beta, eps, momentum, running_mean, running_var,
                         save_mean, save_invstd, scale, shift, scratch);
    FNN_PARALLEL_SPLIT(N, N * C, lo, hi, S(affine_rows)(lo, hi, C, x, scale, shift, y));
}

static void S(bn_backward_rows)(ptrdiff_t N, ptrdiff_t C, int batch_stats, const T *x,
                                const T *gy, const T *gamma, const T *mean, const T *invstd,
                                T *gx, T *ggamma, T *gbeta, double *scratch)
{
    T *k = FNN_SCRATCH_T(scratch, C, 0), *a0 = FNN_SCRATCH_T(scratch, C, 1),
      *a1 = FNN_SCRATCH_T(scratch, C, 2);
    struct S(bn_rows_ctx) ctx = {C, x, gy, mean, invstd, NULL};
    fnn_column_sums(N, 2 * C, S(bn_grad_rows), &ctx, scratch);
    double inv_m = 1.0 / (double)N;
    for (ptrdiff_t j = 0; j < C; j++) {
        double g = gamma ? (double)gamma[j] : 1.0;
        k[j] = (T)(g * invstd[j]);
        a0[j] = batch_stats ? (T)(scratch[j] * inv_m) : (T)0;
        a1[j] = batch_stats ? (T)(scratch[C + j] * inv_m) : (T)0;
        if (ggamma) ggamma[j] += (T)scratch[C + j];
        if (gbeta) gbeta[j] += (T)scratch[j];
    }
    FNN_PARALLEL_SPLIT(N, N * C, lo, hi,
                       S(bn_gx_rows)(lo, hi, C, x, gy, mean, invstd, k, a0, a1, gx));
}

/* Channel blocks [j0, j1) of (outer, C, inner) input in parallel: single channels
 * where each channel has rows of at least FNN_COL_BLOCK positions (BatchNorm2d: its
 * few dozen channels spread over every thread), else FNN_COL_BLOCK channels. A
 * channel's sums never depend on the blocks, so neither do the results. */
#define FNN_FOR_CHANNEL_BLOCKS(work, C, inner, ...)                                       \
    do {                                                                                  \
        ptrdiff_t fnn_cb_ = (inner) >= FNN_COL_BLOCK ? 1 : FNN_COL_BLOCK;                 \
        FNN_PARALLEL_SPLIT(((C) + fnn_cb_ - 1) / fnn_cb_, (work), b0, b1,                 \
                           for (ptrdiff_t b = b0; b < b1; b++) {                          \
                               ptrdiff_t j0 = b * fnn_cb_;                                \
                               ptrdiff_t j1 = j0 + fnn_cb_ < (C) ? j0 + fnn_cb_ : (C);    \
                               __VA_ARGS__;                                               \
                           });                                                            \
    } while (0)

/* The channel-block passes of training (relu: rectify the output) and of backward
 * (relu_y: the ReLU's output, NULL without one). */
static void S(bn_train_blocks)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                               const T *gamma, const T *beta, double eps, double momentum,
                               T *running_mean, T *running_var, int relu, T *y, T *save_mean,
                               T *save_invstd)
{
    FNN_FOR_CHANNEL_BLOCKS(outer * C * inner, C, inner,
                           S(bn_train_block)(outer, C, inner, j0, j1, x, gamma, beta, eps,
                                         momentum, running_mean, running_var, relu, y,
                                         save_mean, save_invstd));
}

static void S(bn_backward_blocks)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                  int batch_stats, const T *x, const T *gy, const T *gamma,
                                  const T *mean, const T *invstd, const T *relu_y, T *gx,
                                  T *ggamma, T *gbeta)
{
    FNN_FOR_CHANNEL_BLOCKS(outer * C * inner, C, inner,
                           S(bn_backward_block)(outer, C, inner, j0, j1, batch_stats, x, gy,
                                            gamma, mean, invstd, relu_y, gx, ggamma, gbeta));
}

void S(fnn_bn_forward_train)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                             const T *gamma, const T *beta, double eps, double momentum,
                             T *running_mean, T *running_var, T *y, T *save_mean,
                             T *save_invstd, double *scratch)
{
    if (inner == 1)
        S(bn_train_rows)(outer, C, x, gamma, beta, eps, momentum, running_mean, running_var,
                         y, save_mean, save_invstd, scratch);
    else
        S(bn_train_blocks)(outer, C, inner, x, gamma, beta, eps, momentum, running_mean,
                           running_var, 0, y, save_mean, save_invstd);
}

void S(fnn_bn_forward_eval)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                            const T *gamma, const T *beta, const T *mean, const T *var,
                            double eps, T *y)
{
    FNN_FOR_CHANNEL_BLOCKS(outer * C * inner, C, inner,
                           S(bn_eval_block)(outer, C, inner, j0, j1, x, gamma, beta, mean, var,
                                        eps, y));
}

void S(fnn_bn_backward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, int batch_stats,
                        const T *x, const T *gy, const T *gamma, const T *mean,
                        const T *invstd, T *gx, T *ggamma, T *gbeta, double *scratch)
{
    if (inner == 1)
        S(bn_backward_rows)(outer, C, batch_stats, x, gy, gamma, mean, invstd, gx, ggamma,
                            gbeta, scratch);
    else
        S(bn_backward_blocks)(outer, C, inner, batch_stats, x, gy, gamma, mean, invstd, NULL,
                              gx, ggamma, gbeta);
}

/* Batch norm (batch statistics) -> ReLU on (outer, C, inner) input, fused: the
 * normalising pass also rectifies, and the backward takes the ReLU's derivative from
 * its output y in the passes of the batch norm's backward. */
void S(fnn_bn_relu_forward_train)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                  const T *x, const T *gamma, const T *beta, double eps,
                                  double momentum, T *running_mean, T *running_var, T *y,
                                  T *save_mean, T *save_invstd)
{
    S(bn_train_blocks)(outer, C, inner, x, gamma, beta, eps, momentum, running_mean,
                       running_var, 1, y, save_mean, save_invstd);
}

void S(fnn_bn_relu_backward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                             const T *y, const T *gy, const T *gamma, const T *mean,
                             const T *invstd, T *gx, T *ggamma, T *gbeta)
{
    S(bn_backward_blocks)(outer, C, inner, 1, x, gy, gamma, mean, invstd, y, gx, ggamma,
                          gbeta);
}
