/* Generic body of rownorm.c; see instantiate.h for T and S().
 *
 * Row norm: x is (R, D) and each row is normalised over its D values - LayerNorm
 * (rows = samples), GroupNorm (rows = sample x group), InstanceNorm (rows = sample x
 * channel). The affine parameters are per channel, where element k of row r belongs
 * to channel (r % groups) * (D / inner) + k / inner: LayerNorm is groups = inner = 1
 * (one weight per element), GroupNorm has inner = H*W, InstanceNorm groups = C.
 * Statistics accumulate in double, one row at a time, so results do not depend on the
 * thread count. */

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
