/* Generic body of activations.c; see instantiate.h for T and S(). */
#include "reduce.h"

/* ---- PReLU (He et al., 2015): y = x for x > 0, a_c x otherwise ------------------
 * x has layout (outer, C, inner) with one slope per channel, or one slope shared by
 * all (nparam == 1). dL/da_c = sum over channel c of gy * x where x <= 0. */
static FNN_CLONES void S(prelu_rows)(ptrdiff_t n, const T *x, T a, T *y)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) y[k] = x[k] > 0 ? x[k] : a * x[k];
}

/* Rows [r0, r1) of an (N, C) x with one slope per column. */
static FNN_CLONES void S(prelu_cols)(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, const T *x,
                                     const T *a, T *y)
{
    for (ptrdiff_t i = r0; i < r1; i++) {
        const T *xr = x + i * C;
        T *yr = y + i * C;
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++) yr[j] = xr[j] > 0 ? xr[j] : a[j] * xr[j];
    }
}

void S(fnn_prelu_forward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                          const T *a, ptrdiff_t nparam, T *y)
{
    if (nparam == 1) {
        FNN_PARALLEL_RANGE(outer * C * inner, lo, hi, S(prelu_rows)(hi - lo, x + lo, a[0], y + lo));
        return;
    }
    if (inner == 1) {
        FNN_PARALLEL_SPLIT(outer, outer * C, lo, hi, S(prelu_cols)(lo, hi, C, x, a, y));
        return;
    }
    FNN_PARALLEL_SPLIT(outer * C, outer * C * inner, lo, hi,
                       for (ptrdiff_t r = lo; r < hi; r++)
                           S(prelu_rows)(inner, x + r * inner, a[r % C], y + r * inner));
}

/* gx for a run of n values with slope a; returns sum of gy * x over x <= 0. */
static FNN_CLONES double S(prelu_grad_chunk)(ptrdiff_t n, const T *x, const T *gy, T *gx,
                                             T a, T unused)
{
    (void)unused;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t k = 0; k < n; k++) {
        int pos = x[k] > 0;
        gx[k] = pos ? gy[k] : a * gy[k];
        s += pos ? 0.0 : (double)gy[k] * x[k];
    }
    return s;
}

struct S(prelu_ctx) {
    ptrdiff_t C;
    const T *x, *gy, *a;
    T *gx;
};

/* gx for rows [r0, r1) of an (N, C) x; acc[j] += sum of gy * x over x <= 0. */
static FNN_CLONES void S(prelu_grad_cols)(ptrdiff_t r0, ptrdiff_t r1, double *acc, void *vctx)
{
    struct S(prelu_ctx) *c = vctx;
    ptrdiff_t C = c->C;
    for (ptrdiff_t i = r0; i < r1; i++) {
        const T *xr = c->x + i * C, *gr = c->gy + i * C;
        T *o = c->gx + i * C;
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++) {
            int pos = xr[j] > 0;
            o[j] = pos ? gr[j] : c->a[j] * gr[j];
            acc[j] += pos ? 0.0 : (double)gr[j] * xr[j];
        }
    }
}

void S(fnn_prelu_backward)(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const T *x,
                           const T *gy, const T *a, ptrdiff_t nparam, T *gx, T *ga,
                           double *scratch)
{
    if (nparam == 1) {
        double s = S(chunked_sum)(S(prelu_grad_chunk), outer * C * inner, x, gy, gx, a[0],
                                  (T)0);
        if (ga) ga[0] += (T)s;
        return;
    }
    if (inner == 1) { /* (N, C): rows read whole, slope gradients as column sums */
        struct S(prelu_ctx) ctx = {C, x, gy, a, gx};
        fnn_column_sums(outer, C, S(prelu_grad_cols), &ctx, scratch);
        if (ga)
            for (ptrdiff_t j = 0; j < C; j++) ga[j] += (T)scratch[j];
        return;
    }
    /* Per channel: rows of that channel in order, so the sum is thread-independent. */
    FNN_PARALLEL_SPLIT(C, outer * C * inner, c0, c1,
                       for (ptrdiff_t c = c0; c < c1; c++) {
                           double s = 0;
                           for (ptrdiff_t n = 0; n < outer; n++) {
                               ptrdiff_t off = (n * C + c) * inner;
                               s += S(prelu_grad_chunk)(inner, x + off, gy + off, gx + off,
                                                        a[c], (T)0);
                           }
                           if (ga) ga[c] += (T)s;
                       });
}

/* ---- Maxout (Goodfellow et al., 2013): y[i, o] = max_p z[i, o * pieces + p] ------
 * idx records the winning piece (the first maximum; NaN wins, so it propagates). */
static void S(maxout_rows)(ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t units, ptrdiff_t pieces,
                           const T *z, T *y, uint8_t *idx)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        for (ptrdiff_t o = 0; o < units; o++) {
            const T *zo = z + (i * units + o) * pieces;
            T m = zo[0];
            uint8_t arg = 0;
            for (ptrdiff_t p = 1; p < pieces; p++) {
                if (zo[p] > m || zo[p] != zo[p]) {
                    m = zo[p];
                    arg = (uint8_t)p;
                }
                if (m != m) break;
            }
            y[i * units + o] = m;
            idx[i * units + o] = arg;
        }
    }
}

void S(fnn_maxout_forward)(ptrdiff_t rows, ptrdiff_t units, ptrdiff_t pieces, const T *z,
                           T *y, uint8_t *idx)
{
    FNN_PARALLEL_SPLIT(rows, rows * units * pieces, lo, hi,
                       S(maxout_rows)(lo, hi, units, pieces, z, y, idx));
}

/* gz = gy routed to the winning piece of each unit, 0 elsewhere. */
void S(fnn_maxout_backward)(ptrdiff_t rows, ptrdiff_t units, ptrdiff_t pieces, const T *gy,
                            const uint8_t *idx, T *gz)
{
    FNN_PARALLEL_RANGE(rows * units, lo, hi,
                       for (ptrdiff_t k = lo; k < hi; k++) {
                           T *gk = gz + k * pieces;
                           for (ptrdiff_t p = 0; p < pieces; p++) gk[p] = 0;
                           gk[idx[k]] = gy[k];
                       });
}

/* ---- Softmax over the last axis of a (rows, cols) array ------------------------- */
static FNN_CLONES void S(softmax_row)(ptrdiff_t cols, const T *x, T *y)
{
    T mx = x[0];
    for (ptrdiff_t k = 1; k < cols; k++) mx = x[k] > mx ? x[k] : mx;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t k = 0; k < cols; k++) {
        y[k] = EXP(x[k] - mx);
        s += y[k];
    }
    T inv = (T)(1.0 / s);
#pragma omp simd
    for (ptrdiff_t k = 0; k < cols; k++) y[k] *= inv;
}

void S(fnn_softmax_forward)(ptrdiff_t rows, ptrdiff_t cols, const T *x, T *y)
{
    FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                       for (ptrdiff_t i = lo; i < hi; i++)
                           S(softmax_row)(cols, x + i * cols, y + i * cols));
}

/* gx = y * (gy - sum_k gy_k y_k), row by row. */
static FNN_CLONES void S(softmax_grad_row)(ptrdiff_t cols, const T *y, const T *gy, T *gx)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t k = 0; k < cols; k++) s += (double)gy[k] * y[k];
    T d = (T)s;
#pragma omp simd
    for (ptrdiff_t k = 0; k < cols; k++) gx[k] = y[k] * (gy[k] - d);
}

void S(fnn_softmax_backward)(ptrdiff_t rows, ptrdiff_t cols, const T *y, const T *gy, T *gx)
{
    FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                       for (ptrdiff_t i = lo; i < hi; i++)
                           S(softmax_grad_row)(cols, y + i * cols, gy + i * cols,
                                               gx + i * cols));
}

/* ---- Gaussian radial basis units ------------------------------------------------
 *   d2[i, j] = |x_i|^2 - 2 x_i . c_j + |c_j|^2   (clamped at 0; xc = x C^T from BLAS)
 *   y[i, j]  = exp(-d2 / (2 s_j^2))
 * rbf_forward turns xc into d2 in place and writes y. */
static FNN_CLONES void S(rbf_rows)(ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t C, const T *xsq,
                                   const T *csq, const T *width, T *d2, T *y)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        T *di = d2 + i * C, *yi = y + i * C;
        T xi = xsq[i];
#pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++) {
            T d = xi - (T)2 * di[j] + csq[j];
            d = d > 0 ? d : (T)0;
            di[j] = d;
            yi[j] = EXP(-d / ((T)2 * width[j] * width[j]));
        }
    }
}

void S(fnn_rbf_forward)(ptrdiff_t rows, ptrdiff_t C, const T *xsq, const T *csq,
                        const T *width, T *xc_d2, T *y)
{
    FNN_PARALLEL_SPLIT(rows, rows * C, lo, hi,
                       S(rbf_rows)(lo, hi, C, xsq, csq, width, xc_d2, y));
}

/* From gy: g = dL/d(d2) = -gy * y / (2 s^2) into gd2; per unit j, gsum[j] = sum_i g
 * and gwidth[j] += sum_i gy * y * d2 / s^3; per row, grow[i] = sum_j g. */
static FNN_CLONES void S(rbf_grad_cols)(ptrdiff_t rows, ptrdiff_t C, ptrdiff_t j0,
                                        ptrdiff_t j1, const T *d2, const T *y, const T *gy,
                                        const T *width, T *gd2, T *gsum, T *gwidth)
{
    double sg[FNN_COL_BLOCK] = {0}, sw[FNN_COL_BLOCK] = {0};
    T k1[FNN_COL_BLOCK], k2[FNN_COL_BLOCK];
    for (ptrdiff_t j = j0; j < j1; j++) {
        k1[j - j0] = (T)-0.5 / (width[j] * width[j]);
        k2[j - j0] = (T)1 / (width[j] * width[j] * width[j]);
    }
    for (ptrdiff_t i = 0; i < rows; i++) {
        ptrdiff_t r = i * C;
#pragma omp simd
        for (ptrdiff_t j = j0; j < j1; j++) {
            T gyy = gy[r + j] * y[r + j];
            T g = gyy * k1[j - j0];
            gd2[r + j] = g;
            sg[j - j0] += g;
            sw[j - j0] += gyy * d2[r + j] * k2[j - j0];
        }
    }
    for (ptrdiff_t j = j0; j < j1; j++) {
        gsum[j] = (T)sg[j - j0];
        if (gwidth) gwidth[j] += (T)sw[j - j0];
    }
}

void S(fnn_rbf_backward)(ptrdiff_t rows, ptrdiff_t C, const T *d2, const T *y, const T *gy,
                         const T *width, T *gd2, T *gsum, T *grow, T *gwidth)
{
    FNN_FOR_COL_BLOCKS(rows * C, C,
                       S(rbf_grad_cols)(rows, C, j0, j1, d2, y, gy, width, gd2, gsum,
                                        gwidth));
    FNN_PARALLEL_SPLIT(rows, rows * C, lo, hi,
                       for (ptrdiff_t i = lo; i < hi; i++) {
                           double s = 0;
                           for (ptrdiff_t j = 0; j < C; j++) s += gd2[i * C + j];
                           grow[i] = (T)s;
                       });
}

/* ---- Add -> ReLU, the join of a residual block: y = max(a + b, 0) in one pass ---- */
static FNN_CLONES void S(add_relu_run)(ptrdiff_t n, const T *a, const T *b, T *y)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) y[k] = FNN_F_RELU(a[k] + b[k], 0, 0);
}

void S(fnn_add_relu)(ptrdiff_t n, const T *a, const T *b, T *y)
{
    FNN_PARALLEL_RANGE(n, lo, hi, S(add_relu_run)(hi - lo, a + lo, b + lo, y + lo));
}
