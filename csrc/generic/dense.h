/* Generic body of dense.c; see instantiate.h for T and S(). */

/* Per activation, three workers over a block of rows / columns:
 *   fwd:  y = F(z + bias) for `rows` rows (bias may be NULL; z gets z + bias when y != z)
 *   grad: gz = gy * D(z, y) elementwise over n elements
 *   gcol: the same over columns [j0, j1) of every row, plus gbias[j] += sum_i gz[i, j] */
#define FNN_DENSE_WORKERS(CODE, name, F, D, NEEDS_INPUT)                                   \
    static FNN_CLONES void S(fwd_##name)(T a, ptrdiff_t rows, ptrdiff_t cols,              \
                                         const T *bias, T *z, T *y)                        \
    {                                                                                      \
        (void)a;                                                                           \
        for (ptrdiff_t i = 0; i < rows; i++) {                                             \
            T *zr = z + i * cols, *yr = y + i * cols;                                      \
            if (!bias) {                                                                   \
                _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                   \
                {                                                                          \
                    T v = zr[j];                                                           \
                    yr[j] = F(v, a);                                                       \
                }                                                                          \
            } else if (y == z) {                                                           \
                _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                   \
                {                                                                          \
                    T v = zr[j] + bias[j];                                                 \
                    yr[j] = F(v, a);                                                       \
                }                                                                          \
            } else {                                                                       \
                _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                   \
                {                                                                          \
                    T v = zr[j] + bias[j];                                                 \
                    zr[j] = v;                                                             \
                    yr[j] = F(v, a);                                                       \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    static FNN_CLONES void S(grad_##name)(T a, ptrdiff_t n, const T *z, const T *y,        \
                                          const T *gy, T *gz)                              \
    {                                                                                      \
        (void)a;                                                                           \
        (void)z;                                                                           \
        (void)y;                                                                           \
        _Pragma("omp simd") for (ptrdiff_t k = 0; k < n; k++) gz[k] = gy[k] * D(z[k], y[k], a); \
    }                                                                                      \
    static FNN_CLONES void S(gcol_##name)(T a, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0, \
                                          ptrdiff_t j1, const T *z, const T *y,            \
                                          const T *gy, T *gz, T *gbias)                    \
    {                                                                                      \
        (void)a;                                                                           \
        (void)z;                                                                           \
        (void)y;                                                                           \
        double acc[FNN_COL_BLOCK] = {0};                                                   \
        for (ptrdiff_t i = 0; i < rows; i++) {                                             \
            ptrdiff_t r = i * cols;                                                        \
            _Pragma("omp simd") for (ptrdiff_t j = j0; j < j1; j++)                        \
            {                                                                              \
                T g = gy[r + j] * D(z[r + j], y[r + j], a);                                \
                gz[r + j] = g;                                                             \
                acc[j - j0] += g;                                                          \
            }                                                                              \
        }                                                                                  \
        for (ptrdiff_t j = j0; j < j1; j++) gbias[j] += (T)acc[j - j0];                    \
    }

FNN_FOR_EACH_ACT(FNN_DENSE_WORKERS)
#undef FNN_DENSE_WORKERS

void S(fnn_bias_act)(int act, T alpha, ptrdiff_t rows, ptrdiff_t cols, const T *bias,
                     T *z, T *y)
{
    /* Without a bias the kernel is elementwise: treat the matrix as one long row so
     * that it splits evenly whatever its shape. */
    if (!bias) {
        cols *= rows;
        rows = 1;
    }
    ptrdiff_t n = rows * cols;
    int nt = fnn_threads_for(n);
    if (nt > 1 && !bias) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int t = 0; t < nt; t++) {
            ptrdiff_t lo, hi;
            fnn_split(n, t, nt, &lo, &hi);
            switch (act) {
#define FNN_CASE(CODE, name, F, D, NI)                                   \
    case CODE:                                                           \
        S(fwd_##name)(alpha, 1, hi - lo, NULL, z + lo, y + lo);          \
        break;
                FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
            }
        }
        return;
    }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        ptrdiff_t lo, hi;
        fnn_split(rows, t, nt, &lo, &hi);
        ptrdiff_t off = lo * cols;
        switch (act) {
#define FNN_CASE(CODE, name, F, D, NI)                                               \
    case CODE:                                                                       \
        S(fwd_##name)(alpha, hi - lo, cols, bias, z + off, y + off);                 \
        break;
            FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
        }
    }
}

void S(fnn_act_backward)(int act, T alpha, ptrdiff_t rows, ptrdiff_t cols, const T *z,
                         const T *y, const T *gy, T *gz, T *gbias)
{
    ptrdiff_t n = rows * cols;
    int nt = fnn_threads_for(n);
    if (!gbias) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int t = 0; t < nt; t++) {
            ptrdiff_t lo, hi;
            fnn_split(n, t, nt, &lo, &hi);
            /* Offsetting a NULL z or y is never dereferenced: D ignores that input. */
            const T *zt = z ? z + lo : NULL, *yt = y ? y + lo : NULL;
            switch (act) {
#define FNN_CASE(CODE, name, F, D, NI)                                         \
    case CODE:                                                                 \
        S(grad_##name)(alpha, hi - lo, zt, yt, gy + lo, gz + lo);              \
        break;
                FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
            }
        }
        return;
    }
    /* Column blocks: each block's sums run over all rows in order, so the bias
     * gradient does not depend on the thread count. */
    ptrdiff_t nblocks = (cols + FNN_COL_BLOCK - 1) / FNN_COL_BLOCK;
    if (nt > nblocks) nt = (int)nblocks;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (ptrdiff_t b = 0; b < nblocks; b++) {
        ptrdiff_t j0 = b * FNN_COL_BLOCK;
        ptrdiff_t j1 = j0 + FNN_COL_BLOCK < cols ? j0 + FNN_COL_BLOCK : cols;
        switch (act) {
#define FNN_CASE(CODE, name, F, D, NI)                                              \
    case CODE:                                                                      \
        S(gcol_##name)(alpha, rows, cols, j0, j1, z, y, gy, gz, gbias);             \
        break;
            FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
        }
    }
}
