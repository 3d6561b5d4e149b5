/* Generic body of batchnorm.c, after batchnorm.h (whose (N, C) statistics pass,
 * bn_stats_rows_all, and scratch layout, FNN_SCRATCH_T, it shares); see instantiate.h
 * for T and S().
 *
 * Batch norm + ReLU (+ dropout), fused, on (N, C) input: the training forward of
 * BatchNorm1d -> ReLU -> Dropout as one statistics pass and one pass that normalises,
 * rectifies and masks: y = relu(x * scale + shift) * m, with m the
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
