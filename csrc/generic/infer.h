/* Generic body of infer.c; see instantiate.h for T and S(). */

void S(fnn_dense_chain)(S(fnn_blas_gemm) gemm, int nlayers, const ptrdiff_t *dims,
                        const T *const *w, const T *const *b, const int *act,
                        const double *alpha, const double *beta, ptrdiff_t rows,
                        const T *x, T *out, T *buf)
{
    ptrdiff_t wmax = 0;
    for (int l = 1; l < nlayers; l++) wmax = dims[l] > wmax ? dims[l] : wmax;
    const T *in = x;
    for (int l = 0; l < nlayers; l++) {
        ptrdiff_t k = dims[l], n = dims[l + 1];
        T *y = l == nlayers - 1 ? out : buf + (l % 2) * rows * wmax;
        S(fnn_gemm)(gemm, 0, 1, rows, n, k, 1.0, in, k, w[l], k, 0.0, y, n);
        S(fnn_bias_act)(act[l], (T)alpha[l], (T)beta[l], rows, n, b[l], y, y);
        in = y;
    }
}
