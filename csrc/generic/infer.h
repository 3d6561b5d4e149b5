/* Generic body of infer.c; see instantiate.h for T and S(). */

/* Rows [r0, r1) of the chain, on the calling thread: per layer one single-threaded
 * BLAS call (row-major y = in W^T is the column-major y^T = W in^T, so the operands
 * are swapped, never copied) and the epilogue on the same rows while they are in
 * cache. buf: 2 * (r1 - r0) * wmax elements. */
static void S(chain_block)(S(fnn_blas_gemm) gemm, int nlayers, const ptrdiff_t *dims,
                           const T *const *w, const T *const *b, const int *act,
                           const double *alpha, const double *beta, ptrdiff_t r0,
                           ptrdiff_t r1, ptrdiff_t wmax, const T *x, T *out, T *buf)
{
    int m = (int)(r1 - r0);
    const T *in = x + r0 * dims[0];
    for (int l = 0; l < nlayers; l++) {
        int k = (int)dims[l], n = (int)dims[l + 1];
        T *y = l == nlayers - 1 ? out + r0 * n : buf + (l % 2) * m * wmax;
        char tw = 'T', tx = 'N';
        T one = 1, zero = 0;
        gemm(&tw, &tx, &n, &m, &k, &one, (T *)w[l], &k, (T *)in, &k, &zero, y, &n);
        for (int i = 0; i < m; i++) /* row by row: below the threads' threshold */
            S(fnn_bias_act)(act[l], (T)alpha[l], (T)beta[l], 1, n, b[l], y + i * n, y + i * n);
        in = y;
    }
}

void S(fnn_dense_chain)(S(fnn_blas_gemm) gemm, int nlayers, const ptrdiff_t *dims,
                        const T *const *w, const T *const *b, const int *act,
                        const double *alpha, const double *beta, ptrdiff_t rows,
                        const T *x, T *out, T *buf)
{
    ptrdiff_t wmax = 0;
    for (int l = 1; l < nlayers; l++) wmax = dims[l] > wmax ? dims[l] : wmax;
    if (rows >= 2 * FNN_INFER_MIN_ROWS) {
        ptrdiff_t len = fnn_infer_block_rows(rows), nblocks = (rows + len - 1) / len;
        int nt = fnn_num_threads < nblocks ? fnn_num_threads : (int)nblocks;
        fnn_blas_single_thread();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (ptrdiff_t blk = 0; blk < nblocks; blk++) {
            ptrdiff_t r0 = blk * len, r1 = r0 + len < rows ? r0 + len : rows;
            S(chain_block)(gemm, nlayers, dims, w, b, act, alpha, beta, r0, r1, wmax, x, out,
                           buf + 2 * r0 * wmax);
        }
        return;
    }
    const T *in = x;
    fnn_blas_single_thread();
    for (int l = 0; l < nlayers; l++) {
        ptrdiff_t k = dims[l], n = dims[l + 1];
        T *y = l == nlayers - 1 ? out : buf + (l % 2) * rows * wmax;
        ptrdiff_t len = fnn_infer_col_block(rows, n, k), nblocks = (n + len - 1) / len;
        int nt = rows * n * k >= FNN_INFER_PAR_WORK && fnn_num_threads > 1
                     ? (fnn_num_threads < nblocks ? fnn_num_threads : (int)nblocks)
                     : 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
        for (ptrdiff_t blk = 0; blk < nblocks; blk++) {
            /* output columns [j, j + c): W's rows j.., C's columns j.. (stride n) */
            int c = (int)(n - blk * len < len ? n - blk * len : len);
            int m = (int)rows, ik = (int)k, in_ = (int)n;
            char tw = 'T', tx = 'N';
            T one = 1, zero = 0;
            gemm(&tw, &tx, &c, &m, &ik, &one, (T *)w[l] + blk * len * k, &ik, (T *)in, &ik,
                 &zero, y + blk * len, &in_);
        }
        S(fnn_bias_act)(act[l], (T)alpha[l], (T)beta[l], rows, n, b[l], y, y);
        in = y;
    }
}
