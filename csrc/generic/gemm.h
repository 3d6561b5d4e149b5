/* Generic body of gemm.c; see instantiate.h for T and S(). */

/* One BLAS call for row-major C (m, n) = alpha op(A) op(B) + beta C. BLAS is
 * column-major and a row-major matrix is the column-major view of its transpose, so
 * C^T = op(B)^T op(A)^T: the operands are swapped, never copied. */
static void S(gemm_call)(S(fnn_blas_gemm) blas, int ta, int tb, ptrdiff_t m, ptrdiff_t n,
                         ptrdiff_t k, T alpha, const T *a, ptrdiff_t lda, const T *b,
                         ptrdiff_t ldb, T beta, T *c, ptrdiff_t ldc)
{
    char cta = ta ? 'T' : 'N', ctb = tb ? 'T' : 'N';
    int im = (int)m, in = (int)n, ik = (int)k;
    int ilda = (int)lda, ildb = (int)ldb, ildc = (int)ldc;
    blas(&ctb, &cta, &in, &im, &ik, &alpha, (T *)b, &ildb, (T *)a, &ilda, &beta, c, &ildc);
}

void S(fnn_gemm)(S(fnn_blas_gemm) blas, int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n,
                 ptrdiff_t k, double alpha_, const T *a, ptrdiff_t lda, const T *b,
                 ptrdiff_t ldb, double beta_, T *c, ptrdiff_t ldc)
{
    T alpha = (T)alpha_, beta = (T)beta_;
    fnn_blas_single_thread();
    int by_rows = m >= n;
    ptrdiff_t dim = by_rows ? m : n, other = by_rows ? n : m;
    double work = (double)m * n * k;
    /* Up to fnn_gemm_blocks blocks of aligned length, the last still large enough for
     * BLAS's regular code path (a tiny block could take a small-matrix path that
     * rounds differently). In double precision the cut depends on the shape only -
     * never on the thread count - so every thread count makes the same calls and gets
     * the same bits. In single precision a single-threaded product is one call: the
     * aligned cut gives the same bits there (tests/test_kernels.py checks it), and
     * re-packing the shared operand for each block would cost up to 15% of a large
     * product on one thread. */
    ptrdiff_t len = dim, nblocks = 1;
    int cut = sizeof(T) == sizeof(double) || fnn_num_threads > 1 ? fnn_gemm_blocks : 1;
    for (int nb = cut; nb > 1; nb /= 2) {
        if (work < (double)nb * FNN_GEMM_BLOCK_MIN) continue;
        len = (dim + nb - 1) / nb;
        len = (len + FNN_GEMM_ALIGN - 1) / FNN_GEMM_ALIGN * FNN_GEMM_ALIGN;
        nblocks = (dim + len - 1) / len;
        if ((double)(dim - (nblocks - 1) * len) * other * k >= FNN_GEMM_BLOCK_MIN) break;
        len = dim;
        nblocks = 1;
    }
    if (nblocks < 2) {
        S(gemm_call)(blas, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int nt = fnn_num_threads < nblocks ? fnn_num_threads : (int)nblocks;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (ptrdiff_t blk = 0; blk < nblocks; blk++) {
        ptrdiff_t lo = blk * len, cnt = dim - lo < len ? dim - lo : len;
        if (by_rows) /* rows [lo, lo + cnt) of C and of op(A) */
            S(gemm_call)(blas, trans_a, trans_b, cnt, n, k, alpha,
                         trans_a ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc);
        else /* columns [lo, lo + cnt) of C and of op(B) */
            S(gemm_call)(blas, trans_a, trans_b, m, cnt, k, alpha, a, lda,
                         trans_b ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
    }
}
