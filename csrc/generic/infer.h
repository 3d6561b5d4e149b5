/* Generic body of infer.c; see instantiate.h for T and S(). */
#include "tile.h"

/* Columns [j0, j0 + w) of c (m rows, ldc) = a (m, k) W^T, W^T in the panels of wt
 * (FNN_PANEL columns each, see infer.h; j0 a multiple of FNN_PANEL): the register tiles
 * (generic/tile.h) take one panel at a time, which stays in L2 while it meets every
 * row, reading it front to back. */
#define FNN_PANEL (3 * FNN_VL)
static void S(panel_gemm)(ptrdiff_t m, ptrdiff_t j0, ptrdiff_t w, ptrdiff_t k, const T *a,
                          const T *wt, T *c, ptrdiff_t ldc)
{
    for (ptrdiff_t j = j0; j < j0 + w; j += FNN_PANEL)
        S(tiled_gemm)(m, j0 + w - j < FNN_PANEL ? j0 + w - j : FNN_PANEL, k, a, k,
                      wt + j / FNN_PANEL * k * FNN_PANEL, (fnn_rows){1, 1, FNN_PANEL, 0, 0},
                      c + j, ldc);
}

/* Rows [r0, r1) of the chain, on the calling thread: per layer one product and the
 * epilogue on the same rows while they are in cache. The product is panel_gemm when wt
 * is given, else one single-threaded BLAS call (row-major y = in W^T is the
 * column-major y^T = W in^T, so the operands are swapped, never copied).
 * buf: 2 * (r1 - r0) * wmax elements. */
static void S(chain_block)(S(fnn_blas_gemm) gemm, int nlayers, const ptrdiff_t *dims,
                           const T *const *w, const T *const *wt,
                           const T *const *b, const int *act, const double *alpha,
                           const double *beta, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t wmax,
                           const T *x, T *out, T *buf)
{
    int m = (int)(r1 - r0);
    const T *in = x + r0 * dims[0];
    for (int l = 0; l < nlayers; l++) {
        int k = (int)dims[l], n = (int)dims[l + 1];
        T *y = l == nlayers - 1 ? out + r0 * n : buf + (l % 2) * m * wmax;
        if (wt) {
            S(panel_gemm)(m, 0, n, k, in, wt[l], y, n);
        } else {
            char tw = 'T', tx = 'N';
            T one = 1, zero = 0;
            gemm(&tw, &tx, &n, &m, &k, &one, (T *)w[l], &k, (T *)in, &k, &zero, y, &n);
        }
        for (int i = 0; i < m; i++) /* row by row: below the threads' threshold */
            S(fnn_bias_act)(act[l], (T)alpha[l], (T)beta[l], 1, n, b[l], y + i * n, y + i * n);
        in = y;
    }
}

/* y[j] = sum_p w[j k + p] x[p] for j < c: one sample through c rows of a weight
 * matrix, read in place (each row contiguous), four rows at a time. */
static FNN_CLONES void S(gemv_rows)(ptrdiff_t c, ptrdiff_t k, const T *w, const T *x, T *y)
{
    ptrdiff_t j = 0;
    for (; j + 4 <= c; j += 4) {
        const T *w0 = w + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (ptrdiff_t p = 0; p < k; p++) {
            s0 += w0[p] * x[p];
            s1 += w1[p] * x[p];
            s2 += w2[p] * x[p];
            s3 += w3[p] * x[p];
        }
        y[j] = s0, y[j + 1] = s1, y[j + 2] = s2, y[j + 3] = s3;
    }
    for (; j < c; j++) {
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t p = 0; p < k; p++) s += w[j * k + p] * x[p];
        y[j] = s;
    }
}

/* One layer of a few rows, cut into blocks of `len` output features (team.h jobs). */
struct S(cols_job) {
    S(fnn_blas_gemm) gemm;
    ptrdiff_t rows, k, n, len;
    const T *w, *wt, *b, *in;
    T *y;
    int act;
    T alpha, beta;
};

/* Output features [j0, j0 + c) of every row: the product (one row: gemv_rows; more:
 * the register tiles on W^T's columns j0.. when wt is given, else BLAS, W's rows j0..
 * meeting C's columns j0.., stride n), then the epilogue of the block while it is in
 * cache. */
static void S(cols_block)(ptrdiff_t blk, int slot, void *arg)
{
    const struct S(cols_job) *J = arg;
    (void)slot;
    ptrdiff_t j0 = blk * J->len, c = J->n - j0 < J->len ? J->n - j0 : J->len;
    if (J->rows == 1) {
        S(gemv_rows)(c, J->k, J->w + j0 * J->k, J->in, J->y + j0);
    } else if (J->wt) {
        S(panel_gemm)(J->rows, j0, c, J->k, J->in, J->wt, J->y, J->n);
    } else {
        int ic = (int)c, m = (int)J->rows, ik = (int)J->k, in_ = (int)J->n;
        char tw = 'T', tx = 'N';
        T one = 1, zero = 0;
        J->gemm(&tw, &tx, &ic, &m, &ik, &one, (T *)J->w + j0 * J->k, &ik, (T *)J->in, &ik,
                &zero, J->y + j0, &in_);
    }
    for (ptrdiff_t i = 0; i < J->rows; i++)
        S(fnn_bias_act)(J->act, J->alpha, J->beta, 1, c, J->b ? J->b + j0 : NULL,
                        J->y + i * J->n + j0, J->y + i * J->n + j0);
}

/* A batch of many rows, cut into blocks of `len` rows that each run through every
 * layer (team.h jobs); slot s's scratch is buf + 2 s len wmax. */
struct S(rows_job) {
    S(fnn_blas_gemm) gemm;
    int nlayers;
    const ptrdiff_t *dims;
    const T *const *w, *const *wt, *const *b;
    const int *act;
    const double *alpha, *beta;
    ptrdiff_t rows, len, wmax;
    const T *x;
    T *out, *buf;
};

static void S(rows_block)(ptrdiff_t blk, int slot, void *arg)
{
    const struct S(rows_job) *J = arg;
    ptrdiff_t r0 = blk * J->len, r1 = r0 + J->len < J->rows ? r0 + J->len : J->rows;
    S(chain_block)(J->gemm, J->nlayers, J->dims, J->w, J->wt, J->b, J->act, J->alpha,
                   J->beta, r0, r1, J->wmax, J->x, J->out,
                   J->buf + 2 * (ptrdiff_t)slot * J->len * J->wmax);
}

void S(fnn_dense_chain)(S(fnn_blas_gemm) gemm, int nlayers, const ptrdiff_t *dims,
                        const T *const *w, const T *const *wt,
                        const T *const *b, const int *act,
                        const double *alpha, const double *beta, ptrdiff_t rows,
                        const T *x, T *out, T *buf)
{
    ptrdiff_t wmax = 0;
    for (int l = 1; l < nlayers; l++) wmax = dims[l] > wmax ? dims[l] : wmax;
    fnn_blas_single_thread();
    if (rows >= FNN_INFER_ROW_BLOCKS) {
        /* Each thread reuses one block's scratch for all its blocks (it stays in the
         * core's cache; a fresh region per block made every layer's stores miss), so
         * at most rows / len threads (the scratch holds 2 rows wmax). */
        ptrdiff_t len = fnn_infer_block_rows(rows), nblocks = (rows + len - 1) / len;
        ptrdiff_t most = rows / len < nblocks ? rows / len : nblocks;
        struct S(rows_job) J = {gemm, nlayers, dims, w, wt, b, act, alpha, beta,
                                rows, len, wmax, x, out, buf};
        fnn_team_run(nblocks, fnn_num_threads < most ? fnn_num_threads : (int)most,
                     S(rows_block), &J);
        return;
    }
    const T *in = x;
    for (int l = 0; l < nlayers; l++) {
        ptrdiff_t k = dims[l], n = dims[l + 1];
        int tiles = wt && rows >= FNN_DENSE_CHAIN_TILE_ROWS;
        struct S(cols_job) J = {gemm, rows, k, n, fnn_infer_col_block(rows, n, k),
                                w[l], tiles ? wt[l] : NULL, b[l], in,
                                l == nlayers - 1 ? out : buf + (l % 2) * rows * wmax,
                                act[l], (T)alpha[l], (T)beta[l]};
        ptrdiff_t nblocks = (n + J.len - 1) / J.len;
        int nt = rows * n * k >= FNN_INFER_TEAM_WORK ? fnn_num_threads : 1;
        fnn_team_run(nblocks, nt < nblocks ? nt : (int)nblocks, S(cols_block), &J);
        in = J.y;
    }
}

#undef FNN_PANEL
#undef FNN_TILES
#undef FNN_VL
