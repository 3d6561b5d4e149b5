/* Generic body of norm.c; see instantiate.h for T and S().
 *
 * Two families, both accumulating statistics in double and splitting work by data
 * layout (never by thread), so results do not depend on the thread count:
 *
 * Batch norm: x has layout (outer, C, inner) - (N, C) for BatchNorm1d, (N, C, H*W)
 * for BatchNorm2d - and each channel is normalised over its outer * inner values.
 * For (N, C) input the statistics are column sums over row chunks (fnn_column_sums),
 * then a pass over the rows applies them; memory is read row by row. With positions
 * (inner > 1) channels are processed in blocks of FNN_COL_BLOCK, each block's
 * statistics pass followed at once by its normalisation pass.
 *
 * Row norm: x is (R, D) and each row is normalised over its D values - LayerNorm
 * (rows = samples), GroupNorm (rows = sample x group), InstanceNorm (rows = sample x
 * channel). The affine parameters are per channel, where element k of row r belongs
 * to channel (r % groups) * (D / inner) + k / inner: LayerNorm is groups = inner = 1
 * (one weight per element), GroupNorm has inner = H*W, InstanceNorm groups = C. */

/* ---- batch norm ---------------------------------------------------------------- */

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

/* y = x * scale + shift on channels [c0, c1) (scale and shift indexed from c0). */
static FNN_CLONES void S(bn_affine_block)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                          ptrdiff_t c0, ptrdiff_t c1, const T *x,
                                          const T *scale, const T *shift, T *y)
{
    ptrdiff_t w = c1 - c0;
    for (ptrdiff_t n = 0; n < outer; n++) {
        ptrdiff_t off = (n * C + c0) * inner;
        const T *xn = x + off;
        T *yn = y + off;
        if (inner == 1) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < w; c++) yn[c] = xn[c] * scale[c] + shift[c];
        } else {
            for (ptrdiff_t c = 0; c < w; c++) {
                T sc = scale[c], sh = shift[c];
                const T *xc = xn + c * inner;
                T *yc = yn + c * inner;
#pragma omp simd
                for (ptrdiff_t k = 0; k < inner; k++) yc[k] = xc[k] * sc + sh;
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
                              T *y, T *save_mean, T *save_invstd)
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
    S(bn_affine_block)(outer, C, inner, c0, c1, x, scale, shift, y);
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
    S(bn_affine_block)(outer, C, inner, c0, c1, x, scale, shift, y);
}

/* Backward of y = gamma * xhat + beta, xhat = (x - mean) * invstd, channels [c0, c1).
 * With batch statistics (training), mean and invstd depend on x:
 *   gx = gamma * invstd * (gy - mean(gy) - xhat * mean(gy * xhat))
 * with fixed (running) statistics: gx = gamma * invstd * gy.
 * ggamma += sum gy * xhat, gbeta += sum gy (each skipped when NULL). */
static FNN_CLONES void S(bn_backward_block)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                            ptrdiff_t c0, ptrdiff_t c1, int batch_stats,
                                            const T *x, const T *gy, const T *gamma,
                                            const T *mean, const T *invstd, T *gx,
                                            T *ggamma, T *gbeta)
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
        const T *xn = x + off, *gn = gy + off;
        if (inner == 1) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < w; c++) {
                double xh = (double)((xn[c] - mu[c]) * is[c]);
                sg[c] += gn[c];
                sgx[c] += gn[c] * xh;
            }
        } else {
            for (ptrdiff_t c = 0; c < w; c++) {
                const T *xc = xn + c * inner, *gc = gn + c * inner;
                T m_ = mu[c], i_ = is[c];
                double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
                for (ptrdiff_t q = 0; q < inner; q++) {
                    a += gc[q];
                    b += gc[q] * (double)((xc[q] - m_) * i_);
                }
                sg[c] += a;
                sgx[c] += b;
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
        const T *xn = x + off, *gn = gy + off;
        T *on = gx + off;
        if (inner == 1) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < w; c++) {
                T xh = (xn[c] - mu[c]) * is[c];
                on[c] = k[c] * (gn[c] - a0[c] - xh * a1[c]);
            }
        } else {
            for (ptrdiff_t c = 0; c < w; c++) {
                const T *xc = xn + c * inner, *gc = gn + c * inner;
                T *oc = on + c * inner;
                T m_ = mu[c], i_ = is[c], k_ = k[c], b0 = a0[c], b1 = a1[c];
#pragma omp simd
                for (ptrdiff_t q = 0; q < inner; q++)
                    oc[q] = k_ * (gc[q] - b0 - (xc[q] - m_) * i_ * b1);
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

void S(fnn_bn_forward_train)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                             const T *gamma, const T *beta, double eps, double momentum,
                             T *running_mean, T *running_var, T *y, T *save_mean,
                             T *save_invstd, double *scratch)
{
    if (inner == 1) {
        S(bn_train_rows)(outer, C, x, gamma, beta, eps, momentum, running_mean, running_var,
                         y, save_mean, save_invstd, scratch);
        return;
    }
    FNN_FOR_COL_BLOCKS(outer * C * inner, C,
                       S(bn_train_block)(outer, C, inner, j0, j1, x, gamma, beta, eps,
                                         momentum, running_mean, running_var, y, save_mean,
                                         save_invstd));
}

void S(fnn_bn_forward_eval)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                            const T *gamma, const T *beta, const T *mean, const T *var,
                            double eps, T *y)
{
    FNN_FOR_COL_BLOCKS(outer * C * inner, C,
                       S(bn_eval_block)(outer, C, inner, j0, j1, x, gamma, beta, mean, var,
                                        eps, y));
}

void S(fnn_bn_backward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, int batch_stats,
                        const T *x, const T *gy, const T *gamma, const T *mean,
                        const T *invstd, T *gx, T *ggamma, T *gbeta, double *scratch)
{
    if (inner == 1) {
        S(bn_backward_rows)(outer, C, batch_stats, x, gy, gamma, mean, invstd, gx, ggamma,
                            gbeta, scratch);
        return;
    }
    FNN_FOR_COL_BLOCKS(outer * C * inner, C,
                       S(bn_backward_block)(outer, C, inner, j0, j1, batch_stats, x, gy,
                                            gamma, mean, invstd, gx, ggamma, gbeta));
}

/* ---- batch norm + ReLU (+ dropout), fused, (N, C) input --------------------------
 * Training forward of BatchNorm1d -> ReLU -> Dropout as one statistics pass and one
 * pass that normalises, rectifies and masks: y = relu(x * scale + shift) * m, with m the
 * inverted-dropout factor of random.h's mask (mask NULL: no dropout, m = 1). The
 * backward recomputes v = x * scale + shift (same scale/shift, same bits) for the ReLU
 * derivative, so neither the normalised nor the rectified values are stored. */

static FNN_CLONES void S(bnrd_rows)(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, const T *x,
                                    const T *scale, const T *shift, T *y, uint8_t *mask,
                                    uint32_t thresh, T dscale, uint64_t key,
                                    uint64_t offset)
{
    for (ptrdiff_t i = r0; i < r1; i++) {
        const T *xr = x + i * C;
        T *yr = y + i * C;
        if (mask) {
            uint8_t *mr = mask + i * C;
            uint32_t base = (uint32_t)(offset + i * C);
#pragma omp simd
            for (ptrdiff_t j = 0; j < C; j++) {
                T v = xr[j] * scale[j] + shift[j];
                T r = FNN_F_RELU(v, 0, 0);
                int keep = fnn_keyed_bits(key, base + (uint32_t)j) >= thresh;
                mr[j] = (uint8_t)keep;
                yr[j] = r * (keep ? dscale : (T)0);
            }
        } else {
#pragma omp simd
            for (ptrdiff_t j = 0; j < C; j++) {
                T v = xr[j] * scale[j] + shift[j];
                yr[j] = FNN_F_RELU(v, 0, 0);
            }
        }
    }
}

void S(fnn_bn_relu_dropout_train)(ptrdiff_t N, ptrdiff_t C, const T *x, const T *gamma,
                                  const T *beta, double eps, double momentum,
                                  T *running_mean, T *running_var, T *y, T *save_mean,
                                  T *save_invstd, T *scale, T *shift, uint8_t *mask,
                                  double p, double dscale, uint64_t seed, uint64_t counter,
                                  uint64_t offset, double *scratch)
{
    S(bn_stats_rows_all)(N, C, x, gamma, beta, eps, momentum, running_mean, running_var,
                         save_mean, save_invstd, scale, shift, scratch);
    uint64_t key = fnn_dropout_key(seed, counter);
    uint32_t thresh = fnn_drop_threshold(p);
    FNN_PARALLEL_SPLIT(N, N * C, lo, hi,
                       S(bnrd_rows)(lo, hi, C, x, scale, shift, y, mask, thresh, (T)dscale,
                                    key, offset));
}

/* dL/dv for one element: the dropout factor and the ReLU derivative (as FNN_D_RELU:
 * 0 where v <= 0, passing at NaN). */
#define FNN_BNRD_GV(g, v, keep_factor) ((v) <= 0 ? (T)0 : (g) * (keep_factor))

struct S(bnrd_ctx) {
    ptrdiff_t C;
    const T *x, *gy, *mean, *invstd, *scale, *shift;
    const uint8_t *mask;
    T dscale;
};

/* The dropout factor of each element of row i, columns [j0, j0 + w): mask * dscale,
 * or 1 without a mask. Converting the byte mask in a loop of its own keeps the loops
 * below to float and double only, which GCC vectorises (bytes, floats and doubles in
 * one loop it does not). */
#define FNN_BNRD_BLOCK 256
static inline void S(bnrd_factors)(const struct S(bnrd_ctx) *c, ptrdiff_t i, ptrdiff_t j0,
                                   ptrdiff_t w, T *f)
{
    if (!c->mask) {
        for (ptrdiff_t j = 0; j < w; j++) f[j] = (T)1;
        return;
    }
    const uint8_t *mr = c->mask + i * c->C + j0;
    T ds = c->dscale;
#pragma omp simd
    for (ptrdiff_t j = 0; j < w; j++) f[j] = (T)mr[j] * ds;
}

/* acc[0..C) += sum gv, acc[C..2C) += sum gv * xhat over rows [r0, r1). */
static FNN_CLONES void S(bnrd_grad_rows)(ptrdiff_t r0, ptrdiff_t r1, double *acc, void *vctx)
{
    const struct S(bnrd_ctx) *c = vctx;
    ptrdiff_t C = c->C;
    const T *scale = c->scale, *shift = c->shift, *mean = c->mean, *invstd = c->invstd;
    T f[FNN_BNRD_BLOCK];
    for (ptrdiff_t i = r0; i < r1; i++) {
        for (ptrdiff_t j0 = 0; j0 < C; j0 += FNN_BNRD_BLOCK) {
            ptrdiff_t w = C - j0 < FNN_BNRD_BLOCK ? C - j0 : FNN_BNRD_BLOCK;
            const T *xr = c->x + i * C + j0, *gr = c->gy + i * C + j0;
            const T *sc = scale + j0, *sh = shift + j0, *mu = mean + j0, *is = invstd + j0;
            double *a0 = acc + j0, *a1 = acc + C + j0;
            S(bnrd_factors)(c, i, j0, w, f);
#pragma omp simd
            for (ptrdiff_t j = 0; j < w; j++) {
                T v = xr[j] * sc[j] + sh[j];
                T gv = FNN_BNRD_GV(gr[j], v, f[j]);
                a0[j] += gv;
                a1[j] += gv * (double)((xr[j] - mu[j]) * is[j]);
            }
        }
    }
}

/* gx = k * (gv - a0 - xhat * a1) over rows [r0, r1). */
static FNN_CLONES void S(bnrd_gx_rows)(ptrdiff_t r0, ptrdiff_t r1, const struct S(bnrd_ctx) *c,
                                       const T *k, const T *a0, const T *a1, T *gx)
{
    ptrdiff_t C = c->C;
    const T *scale = c->scale, *shift = c->shift, *mean = c->mean, *invstd = c->invstd;
    T f[FNN_BNRD_BLOCK];
    for (ptrdiff_t i = r0; i < r1; i++) {
        for (ptrdiff_t j0 = 0; j0 < C; j0 += FNN_BNRD_BLOCK) {
            ptrdiff_t w = C - j0 < FNN_BNRD_BLOCK ? C - j0 : FNN_BNRD_BLOCK;
            const T *xr = c->x + i * C + j0, *gr = c->gy + i * C + j0;
            const T *sc = scale + j0, *sh = shift + j0, *mu = mean + j0, *is = invstd + j0;
            const T *kk = k + j0, *b0 = a0 + j0, *b1 = a1 + j0;
            T *o = gx + i * C + j0;
            S(bnrd_factors)(c, i, j0, w, f);
#pragma omp simd
            for (ptrdiff_t j = 0; j < w; j++) {
                T v = xr[j] * sc[j] + sh[j];
                T gv = FNN_BNRD_GV(gr[j], v, f[j]);
                o[j] = kk[j] * (gv - b0[j] - (xr[j] - mu[j]) * is[j] * b1[j]);
            }
        }
    }
}

void S(fnn_bn_relu_dropout_backward)(ptrdiff_t N, ptrdiff_t C, const T *x, const T *gy,
                                     const T *gamma, const T *mean, const T *invstd,
                                     const T *scale, const T *shift, const uint8_t *mask,
                                     double dscale, T *gx, T *ggamma, T *gbeta,
                                     double *scratch)
{
    T *k = FNN_SCRATCH_T(scratch, C, 0), *a0 = FNN_SCRATCH_T(scratch, C, 1),
      *a1 = FNN_SCRATCH_T(scratch, C, 2);
    struct S(bnrd_ctx) ctx = {C, x, gy, mean, invstd, scale, shift, mask, (T)dscale};
    fnn_column_sums(N, 2 * C, S(bnrd_grad_rows), &ctx, scratch);
    double inv_m = 1.0 / (double)N;
    for (ptrdiff_t j = 0; j < C; j++) {
        double g = gamma ? (double)gamma[j] : 1.0;
        k[j] = (T)(g * invstd[j]);
        a0[j] = (T)(scratch[j] * inv_m);
        a1[j] = (T)(scratch[C + j] * inv_m);
        if (ggamma) ggamma[j] += (T)scratch[C + j];
        if (gbeta) gbeta[j] += (T)scratch[j];
    }
    FNN_PARALLEL_SPLIT(N, N * C, lo, hi, S(bnrd_gx_rows)(lo, hi, &ctx, k, a0, a1, gx));
}

/* ---- row norm ------------------------------------------------------------------ */

/* Normalise row r (length D) and apply the per-channel affine (w, b may be NULL). */
static FNN_CLONES void S(rownorm_row)(ptrdiff_t r, ptrdiff_t D, ptrdiff_t groups,
                                      ptrdiff_t inner, const T *x, const T *w, const T *b,
                                      double eps, T *y, T *mean, T *invstd)
{
    const T *xr = x + r * D;
    T *yr = y + r * D;
    double s = 0, ss = 0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t k = 0; k < D; k++) s += xr[k];
    double mu = s / (double)D;
#pragma omp simd reduction(+ : ss)
    for (ptrdiff_t k = 0; k < D; k++) {
        double d = (double)xr[k] - mu;
        ss += d * d;
    }
    double is = 1.0 / sqrt(ss / (double)D + eps);
    mean[r] = (T)mu;
    invstd[r] = (T)is;
    T m_ = (T)mu, i_ = (T)is;
    ptrdiff_t base = (r % groups) * (D / inner);
    if (!w) {
#pragma omp simd
        for (ptrdiff_t k = 0; k < D; k++) yr[k] = (xr[k] - m_) * i_;
    } else if (inner == 1) {
        const T *wr = w + base, *br = b + base;
#pragma omp simd
        for (ptrdiff_t k = 0; k < D; k++) yr[k] = (xr[k] - m_) * i_ * wr[k] + br[k];
    } else {
        for (ptrdiff_t c = 0; c < D / inner; c++) {
            T wc = w[base + c] * i_, bc = b[base + c] - m_ * w[base + c] * i_;
            const T *xc = xr + c * inner;
            T *yc = yr + c * inner;
#pragma omp simd
            for (ptrdiff_t k = 0; k < inner; k++) yc[k] = xc[k] * wc + bc;
        }
    }
}

void S(fnn_rownorm_forward)(ptrdiff_t R, ptrdiff_t D, ptrdiff_t groups, ptrdiff_t inner,
                            const T *x, const T *w, const T *b, double eps, T *y, T *mean,
                            T *invstd)
{
    FNN_PARALLEL_SPLIT(R, R * D, lo, hi,
                       for (ptrdiff_t r = lo; r < hi; r++)
                           S(rownorm_row)(r, D, groups, inner, x, w, b, eps, y, mean,
                                          invstd));
}

/* Input gradient of row r:  with u = gy * w (per channel),
 *   gx = invstd * (u - mean_k(u) - xhat * mean_k(u * xhat)). */
static FNN_CLONES void S(rownorm_grad_row)(ptrdiff_t r, ptrdiff_t D, ptrdiff_t groups,
                                           ptrdiff_t inner, const T *x, const T *gy,
                                           const T *w, const T *mean, const T *invstd,
                                           T *gx)
{
    const T *xr = x + r * D, *gr = gy + r * D;
    T *or_ = gx + r * D;
    T m_ = mean[r], i_ = invstd[r];
    ptrdiff_t base = (r % groups) * (D / inner);
    double su = 0, sux = 0;
    /* First pass: u into gx (as scratch) and its two sums. */
    if (!w) {
#pragma omp simd reduction(+ : su, sux)
        for (ptrdiff_t k = 0; k < D; k++) {
            T u = gr[k];
            or_[k] = u;
            su += u;
            sux += u * (double)((xr[k] - m_) * i_);
        }
    } else if (inner == 1) { /* one weight per element (LayerNorm) */
        const T *wr = w + base;
#pragma omp simd reduction(+ : su, sux)
        for (ptrdiff_t k = 0; k < D; k++) {
            T u = gr[k] * wr[k];
            or_[k] = u;
            su += u;
            sux += u * (double)((xr[k] - m_) * i_);
        }
    } else {
        for (ptrdiff_t c = 0; c < D / inner; c++) {
            T wc = w[base + c];
            ptrdiff_t k0 = c * inner;
#pragma omp simd reduction(+ : su, sux)
            for (ptrdiff_t k = k0; k < k0 + inner; k++) {
                T u = gr[k] * wc;
                or_[k] = u;
                su += u;
                sux += u * (double)((xr[k] - m_) * i_);
            }
        }
    }
    T a0 = (T)(su / (double)D), a1 = (T)(sux / (double)D);
#pragma omp simd
    for (ptrdiff_t k = 0; k < D; k++) or_[k] = i_ * (or_[k] - a0 - (xr[k] - m_) * i_ * a1);
}

/* Parameter gradients of channels [c0, c1): gw[c] += sum gy * xhat, gb[c] += sum gy
 * over the elements of channel c in every row, rows in order. */
static FNN_CLONES void S(rownorm_param_block)(ptrdiff_t R, ptrdiff_t D, ptrdiff_t groups,
                                              ptrdiff_t inner, ptrdiff_t c0, ptrdiff_t c1,
                                              const T *x, const T *gy, const T *mean,
                                              const T *invstd, T *gw, T *gb)
{
    double aw[FNN_COL_BLOCK] = {0}, ab[FNN_COL_BLOCK] = {0};
    ptrdiff_t per_row = D / inner; /* channels in one row */
    for (ptrdiff_t r = 0; r < R; r++) {
        ptrdiff_t base = (r % groups) * per_row;
        ptrdiff_t lo = c0 > base ? c0 : base;
        ptrdiff_t hi = c1 < base + per_row ? c1 : base + per_row;
        if (lo >= hi) continue;
        const T *xr = x + r * D, *gr = gy + r * D;
        T m_ = mean[r], i_ = invstd[r];
        if (inner == 1) {
#pragma omp simd
            for (ptrdiff_t c = lo; c < hi; c++) {
                ptrdiff_t k = c - base;
                aw[c - c0] += gr[k] * (double)((xr[k] - m_) * i_);
                ab[c - c0] += gr[k];
            }
        } else {
            for (ptrdiff_t c = lo; c < hi; c++) {
                ptrdiff_t k0 = (c - base) * inner;
                double sw = 0, sb = 0;
#pragma omp simd reduction(+ : sw, sb)
                for (ptrdiff_t k = k0; k < k0 + inner; k++) {
                    sw += gr[k] * (double)((xr[k] - m_) * i_);
                    sb += gr[k];
                }
                aw[c - c0] += sw;
                ab[c - c0] += sb;
            }
        }
    }
    for (ptrdiff_t c = c0; c < c1; c++) {
        if (gw) gw[c] += (T)aw[c - c0];
        if (gb) gb[c] += (T)ab[c - c0];
    }
}

void S(fnn_rownorm_backward)(ptrdiff_t R, ptrdiff_t D, ptrdiff_t groups, ptrdiff_t inner,
                             const T *x, const T *gy, const T *w, const T *mean,
                             const T *invstd, T *gx, T *gw, T *gb)
{
    if (gx)
        FNN_PARALLEL_SPLIT(R, R * D, lo, hi,
                           for (ptrdiff_t r = lo; r < hi; r++)
                               S(rownorm_grad_row)(r, D, groups, inner, x, gy, w, mean,
                                                   invstd, gx));
    if (gw || gb)
        FNN_FOR_COL_BLOCKS(R * D, groups * (D / inner),
                           S(rownorm_param_block)(R, D, groups, inner, j0, j1, x, gy, mean,
                                                  invstd, gw, gb));
}

/* ---- weight normalisation (Salimans & Kingma, 2016) ----------------------------
 * Over the rows of v (rows, cols): w = g * v / |v|, |v| the row's Euclidean norm. */
void S(fnn_weight_norm_forward)(ptrdiff_t rows, ptrdiff_t cols, const T *v, const T *g,
                                T *w, T *norms)
{
    FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                       for (ptrdiff_t i = lo; i < hi; i++) {
                           const T *vi = v + i * cols;
                           T *wi = w + i * cols;
                           double s = 0;
                           for (ptrdiff_t k = 0; k < cols; k++) s += (double)vi[k] * vi[k];
                           double nrm = sqrt(s);
                           norms[i] = (T)nrm;
                           T f = (T)((double)g[i] / nrm);
                           for (ptrdiff_t k = 0; k < cols; k++) wi[k] = vi[k] * f;
                       });
}

/* From gw = dL/dw:  gg += (gw . v) / |v|,  gv += g / |v| * (gw - (gw . v) / |v|^2 * v). */
void S(fnn_weight_norm_backward)(ptrdiff_t rows, ptrdiff_t cols, const T *v, const T *g,
                                 const T *norms, const T *gw, T *gv, T *gg)
{
    FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                       for (ptrdiff_t i = lo; i < hi; i++) {
                           const T *vi = v + i * cols, *gi = gw + i * cols;
                           double dot = 0, nrm = (double)norms[i];
                           for (ptrdiff_t k = 0; k < cols; k++) dot += (double)gi[k] * vi[k];
                           if (gg) gg[i] += (T)(dot / nrm);
                           if (gv) {
                               T a = (T)((double)g[i] / nrm), b = (T)(dot / (nrm * nrm));
                               T *o = gv + i * cols;
                               for (ptrdiff_t k = 0; k < cols; k++) o[k] += a * (gi[k] - b * vi[k]);
                           }
                       });
}
