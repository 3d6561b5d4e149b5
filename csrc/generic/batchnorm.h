/* Generic body of batchnorm.c (with bn_relu_dropout.h); see instantiate.h for T and S().
 *
 * Batch norm: x has layout (outer, C, inner) - (N, C) for BatchNorm1d, (N, C, H*W)
 * for BatchNorm2d - and each channel is normalised over its outer * inner values.
 * Training is two passes over memory in its order. For (N, C) input the statistics
 * are column sums over chunks of rows (fnn_column_sums), then a pass over the rows
 * applies them. With positions (inner > 1) each thread takes a range of channels and
 * reads, sample by sample, the planes of its channels (contiguous in memory): sums,
 * then the normalising pass. Backward is the same: its two sums per channel in one
 * pass, the input gradient in a second. Statistics accumulate in double and work is
 * split by data layout (never by thread), so results do not depend on the thread
 * count. Evaluation (fixed statistics) is one pass over channel blocks. */

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

/* -- (N, C, inner) input: each thread a range of channels [c0, c1), sample by sample --
 * A sample's planes of the range lie one after the other in memory, so each pass reads
 * runs of (c1 - c0) * inner values in order. A thread has all it needs for its
 * channels - sums, then the normalisation (or both passes of backward) - so a call is
 * one parallel region without a barrier; a channel's sums run over the samples in
 * order whatever range holds it, so results do not depend on the thread count. */

/* s1[c] = sum (x - shift[c]), s2[c] = sum (x - shift[c])^2 for c in [c0, c1):
 * partial sums of FNN_SUM_SPAN values in T (the shift keeps them small), then in
 * double. */
static FNN_CLONES void S(bn_stats_range)(ptrdiff_t N, ptrdiff_t C, ptrdiff_t inner,
                                         ptrdiff_t c0, ptrdiff_t c1, const T *x,
                                         const T *shift, double *s1, double *s2)
{
    for (ptrdiff_t c = c0; c < c1; c++) s1[c] = s2[c] = 0;
    for (ptrdiff_t n = 0; n < N; n++)
        for (ptrdiff_t c = c0; c < c1; c++) {
            const T *xc = x + (n * C + c) * inner;
            T sh = shift[c];
            double sa = 0, sb = 0;
            for (ptrdiff_t q0 = 0; q0 < inner; q0 += FNN_SUM_SPAN) {
                ptrdiff_t q1 = q0 + FNN_SUM_SPAN < inner ? q0 + FNN_SUM_SPAN : inner;
                T a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
                for (ptrdiff_t q = q0; q < q1; q++) {
                    T d = xc[q] - sh;
                    a += d;
                    b += d * d;
                }
                sa += a;
                sb += b;
            }
            s1[c] += sa;
            s2[c] += sb;
        }
}

/* The batch norm's output before a ReLU, x * scale + shift, computed as the forward
 * pass computes it (bn_affine_range): backward takes the ReLU's mask from x again
 * instead of reading its output. */
#define FNN_BN_Z(x, sc, sh) ((x) * (sc) + (sh))

/* sg[c] = sum g', sgx[c] = sum g' (x - mean[c]) for c in [c0, c1), with g' = gy, or
 * with a ReLU after the batch norm (relu_scale given) g' = gy where the ReLU passed
 * its input. Partial sums of FNN_SUM_SPAN values in T, then in double. */
static FNN_CLONES void S(bn_grad_range)(ptrdiff_t N, ptrdiff_t C, ptrdiff_t inner,
                                        ptrdiff_t c0, ptrdiff_t c1, const T *x, const T *gy,
                                        const T *relu_scale, const T *relu_shift,
                                        const T *mean, double *sg, double *sgx)
{
    for (ptrdiff_t c = c0; c < c1; c++) sg[c] = sgx[c] = 0;
    for (ptrdiff_t n = 0; n < N; n++)
        for (ptrdiff_t c = c0; c < c1; c++) {
            ptrdiff_t off = (n * C + c) * inner;
            const T *xc = x + off, *gc = gy + off;
            T mu = mean[c];
            double sa = 0, sb = 0;
            for (ptrdiff_t q0 = 0; q0 < inner; q0 += FNN_SUM_SPAN) {
                ptrdiff_t q1 = q0 + FNN_SUM_SPAN < inner ? q0 + FNN_SUM_SPAN : inner;
                T a = 0, b = 0;
                if (relu_scale) {
                    T sc = relu_scale[c], sh = relu_shift[c];
#pragma omp simd reduction(+ : a, b)
                    for (ptrdiff_t q = q0; q < q1; q++) {
                        T xq = xc[q], gq = gc[q];
                        T g = FNN_BN_Z(xq, sc, sh) > 0 ? gq : (T)0;
                        a += g;
                        b += g * (xq - mu);
                    }
                } else {
#pragma omp simd reduction(+ : a, b)
                    for (ptrdiff_t q = q0; q < q1; q++) {
                        a += gc[q];
                        b += gc[q] * (xc[q] - mu);
                    }
                }
                sa += a;
                sb += b;
            }
            sg[c] += sa;
            sgx[c] += sb;
        }
}

/* y = x * scale[c] + shift[c] (then max(y, 0) with relu; NaN passes), c in [c0, c1). */
static FNN_CLONES void S(bn_affine_range)(ptrdiff_t N, ptrdiff_t C, ptrdiff_t inner,
                                          ptrdiff_t c0, ptrdiff_t c1, const T *x,
                                          const T *scale, const T *shift, int relu, T *y)
{
    for (ptrdiff_t n = 0; n < N; n++)
        for (ptrdiff_t c = c0; c < c1; c++) {
            ptrdiff_t off = (n * C + c) * inner;
            const T *xp = x + off;
            T *yp = y + off, sc = scale[c], sh = shift[c];
            if (relu) {
#pragma omp simd
                for (ptrdiff_t q = 0; q < inner; q++) {
                    T z = FNN_BN_Z(xp[q], sc, sh);
                    yp[q] = FNN_F_RELU(z, 0, 0);
                }
            } else {
#pragma omp simd
                for (ptrdiff_t q = 0; q < inner; q++) yp[q] = FNN_BN_Z(xp[q], sc, sh);
            }
        }
}

/* gx = k g' - b0 - b1 (x - mean), c in [c0, c1) (g' as in bn_grad_range). */
static FNN_CLONES void S(bn_gx_range)(ptrdiff_t N, ptrdiff_t C, ptrdiff_t inner, ptrdiff_t c0,
                                      ptrdiff_t c1, const T *x, const T *gy,
                                      const T *relu_scale, const T *relu_shift,
                                      const T *mean, const T *k, const T *b0, const T *b1,
                                      T *gx)
{
    for (ptrdiff_t n = 0; n < N; n++)
        for (ptrdiff_t c = c0; c < c1; c++) {
            ptrdiff_t off = (n * C + c) * inner;
            const T *xp = x + off, *gp = gy + off;
            T *o = gx + off, mu = mean[c], k_ = k[c], d0 = b0[c], d1 = b1[c];
            if (relu_scale) {
                T sc = relu_scale[c], sh = relu_shift[c];
#pragma omp simd
                for (ptrdiff_t q = 0; q < inner; q++) {
                    T xq = xp[q], gq = gp[q];
                    T g = FNN_BN_Z(xq, sc, sh) > 0 ? gq : (T)0;
                    o[q] = k_ * g - d0 - d1 * (xq - mu);
                }
            } else {
#pragma omp simd
                for (ptrdiff_t q = 0; q < inner; q++) o[q] = k_ * gp[q] - d0 - d1 * (xp[q] - mu);
            }
        }
}

/* T arrays of C elements in the free tail of a FNN_COLSUM_SCRATCH(2C) scratch (room
 * for 4C doubles; three arrays are used). */
#define FNN_SCRATCH_T(scratch, C, i) \
    ((T *)((scratch) + (FNN_ROW_CHUNKS + 1) * 2 * (C)) + (i) * (C))

/* From s1, s2 - sums of (x - shift0) and its square over m values per channel - for
 * channels [c0, c1): save_mean, save_invstd, the running statistics (if given) and
 * the affine scale/shift that normalise x (y = x * scale + shift). The shift (each
 * channel's first value) avoids cancellation in the sum of squares for data far
 * from 0. */
static void S(bn_finish_stats)(ptrdiff_t c0, ptrdiff_t c1, double m, const double *s1,
                               const double *s2, const T *shift0, const T *gamma,
                               const T *beta, double eps, double momentum, T *running_mean,
                               T *running_var, T *save_mean, T *save_invstd, T *scale,
                               T *shift)
{
    double unbias = m > 1 ? m / (m - 1) : 1.0;
    for (ptrdiff_t j = c0; j < c1; j++) {
        double mu = s1[j] / m, v = s2[j] / m - mu * mu;
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

/* Batch statistics of an (N, C) x (column sums over row chunks), as bn_finish_stats. */
static void S(bn_stats_rows_all)(ptrdiff_t N, ptrdiff_t C, const T *x, const T *gamma,
                                 const T *beta, double eps, double momentum,
                                 T *running_mean, T *running_var, T *save_mean,
                                 T *save_invstd, T *scale, T *shift, double *scratch)
{
    T *shift0 = FNN_SCRATCH_T(scratch, C, 0);
    for (ptrdiff_t j = 0; j < C; j++) shift0[j] = x[j]; /* the first row */
    struct S(bn_rows_ctx) ctx = {C, x, NULL, NULL, NULL, shift0};
    fnn_column_sums(N, 2 * C, S(bn_stats_rows), &ctx, scratch);
    S(bn_finish_stats)(0, C, (double)N, scratch, scratch + C, shift0, gamma, beta, eps,
                       momentum, running_mean, running_var, save_mean, save_invstd, scale,
                       shift);
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

/* Training forward on (outer, C, inner) input with inner > 1 or a ReLU (relu); the
 * affine y = x * scale + shift goes to scale, shift (C each; scratch if NULL). */
static void S(bn_train_planes)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                               const T *gamma, const T *beta, double eps, double momentum,
                               T *running_mean, T *running_var, int relu, T *y, T *save_mean,
                               T *save_invstd, T *scale, T *shift, double *scratch)
{
    T *shift0 = FNN_SCRATCH_T(scratch, C, 0);
    if (!scale) scale = FNN_SCRATCH_T(scratch, C, 1);
    if (!shift) shift = FNN_SCRATCH_T(scratch, C, 2);
    double *s1 = scratch, *s2 = scratch + C, m = (double)(outer * inner);
    FNN_PARALLEL_SPLIT(C, outer * C * inner, c0, c1,
                       for (ptrdiff_t c = c0; c < c1; c++) shift0[c] = x[c * inner];
                       S(bn_stats_range)(outer, C, inner, c0, c1, x, shift0, s1, s2);
                       S(bn_finish_stats)(c0, c1, m, s1, s2, shift0, gamma, beta, eps,
                                          momentum, running_mean, running_var, save_mean,
                                          save_invstd, scale, shift);
                       S(bn_affine_range)(outer, C, inner, c0, c1, x, scale, shift, relu, y));
}

/* Backward on (outer, C, inner) input (relu_scale, relu_shift: the forward's affine
 * when a ReLU follows, NULL without one):
 * gx = k * (g' - a0 - xhat * a1) with k = gamma * invstd, a0 = mean(g'), a1 =
 * mean(g' xhat) under batch statistics (0 with fixed ones), xhat = (x - mean) invstd,
 * computed as k g' - b0 - b1 (x - mean) with b0 = k a0, b1 = k invstd a1. */
static void S(bn_backward_planes)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                  int batch_stats, const T *x, const T *gy,
                                  const T *relu_scale, const T *relu_shift,
                                  const T *gamma, const T *mean, const T *invstd, T *gx,
                                  T *ggamma, T *gbeta, double *scratch)
{
    T *k = FNN_SCRATCH_T(scratch, C, 0), *b0 = FNN_SCRATCH_T(scratch, C, 1),
      *b1 = FNN_SCRATCH_T(scratch, C, 2);
    double *sg = scratch, *sgx = scratch + C, inv_m = 1.0 / (double)(outer * inner);
    FNN_PARALLEL_SPLIT(
        C, outer * C * inner, c0, c1,
        S(bn_grad_range)(outer, C, inner, c0, c1, x, gy, relu_scale, relu_shift, mean, sg,
                         sgx);
        for (ptrdiff_t j = c0; j < c1; j++) {
            double is = (double)invstd[j], kj = (gamma ? (double)gamma[j] : 1.0) * is;
            double sx = sgx[j] * is; /* sum g' xhat */
            k[j] = (T)kj;
            b0[j] = batch_stats ? (T)(kj * sg[j] * inv_m) : (T)0;
            b1[j] = batch_stats ? (T)(kj * is * sx * inv_m) : (T)0;
            if (ggamma) ggamma[j] += (T)sx;
            if (gbeta) gbeta[j] += (T)sg[j];
        } S(bn_gx_range)(outer, C, inner, c0, c1, x, gy, relu_scale, relu_shift, mean, k,
                         b0, b1, gx));
}

/* Channel blocks [j0, j1) of (outer, C, inner) input in parallel (evaluation): single
 * channels where each channel has rows of at least FNN_COL_BLOCK positions, else
 * FNN_COL_BLOCK channels. */
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

void S(fnn_bn_forward_train)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                             const T *gamma, const T *beta, double eps, double momentum,
                             T *running_mean, T *running_var, T *y, T *save_mean,
                             T *save_invstd, double *scratch)
{
    if (inner == 1)
        S(bn_train_rows)(outer, C, x, gamma, beta, eps, momentum, running_mean, running_var,
                         y, save_mean, save_invstd, scratch);
    else
        S(bn_train_planes)(outer, C, inner, x, gamma, beta, eps, momentum, running_mean,
                           running_var, 0, y, save_mean, save_invstd, NULL, NULL, scratch);
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
        S(bn_backward_planes)(outer, C, inner, batch_stats, x, gy, NULL, NULL, gamma, mean,
                              invstd, gx, ggamma, gbeta, scratch);
}

/* Batch norm (batch statistics) -> ReLU on (outer, C, inner) input, fused: the
 * normalising pass also rectifies and hands its affine (scale, shift) to the backward,
 * which takes the ReLU's derivative from x * scale + shift > 0 in the passes of the
 * batch norm's backward (the ReLU's output is not read again). */
void S(fnn_bn_relu_forward_train)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                  const T *x, const T *gamma, const T *beta, double eps,
                                  double momentum, T *running_mean, T *running_var, T *y,
                                  T *save_mean, T *save_invstd, T *scale, T *shift,
                                  double *scratch)
{
    S(bn_train_planes)(outer, C, inner, x, gamma, beta, eps, momentum, running_mean,
                       running_var, 1, y, save_mean, save_invstd, scale, shift, scratch);
}

void S(fnn_bn_relu_backward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                             const T *gy, const T *gamma, const T *mean, const T *invstd,
                             const T *scale, const T *shift, T *gx, T *ggamma, T *gbeta,
                             double *scratch)
{
    S(bn_backward_planes)(outer, C, inner, 1, x, gy, scale, shift, gamma, mean, invstd, gx,
                          ggamma, gbeta, scratch);
}
