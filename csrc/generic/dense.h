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

/* Dispatch on the activation code to its workers. */
static inline void S(fwd)(int act, T a, ptrdiff_t rows, ptrdiff_t cols, const T *bias, T *z,
                          T *y)
{
    switch (act) {
#define FNN_CASE(CODE, name, F, D, NI) \
    case CODE:                         \
        S(fwd_##name)(a, rows, cols, bias, z, y); \
        break;
        FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
    }
}

static inline void S(grad)(int act, T a, ptrdiff_t n, const T *z, const T *y, const T *gy,
                           T *gz)
{
    switch (act) {
#define FNN_CASE(CODE, name, F, D, NI) \
    case CODE:                         \
        S(grad_##name)(a, n, z, y, gy, gz); \
        break;
        FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
    }
}

static inline void S(gcol)(int act, T a, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0,
                           ptrdiff_t j1, const T *z, const T *y, const T *gy, T *gz,
                           T *gbias)
{
    switch (act) {
#define FNN_CASE(CODE, name, F, D, NI) \
    case CODE:                         \
        S(gcol_##name)(a, rows, cols, j0, j1, z, y, gy, gz, gbias); \
        break;
        FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
    }
}

void S(fnn_bias_act)(int act, T alpha, ptrdiff_t rows, ptrdiff_t cols, const T *bias,
                     T *z, T *y)
{
    if (!bias) /* elementwise: split the flat array, whatever its shape */
        FNN_PARALLEL_RANGE(rows * cols, lo, hi,
                           S(fwd)(act, alpha, 1, hi - lo, NULL, z + lo, y + lo));
    else
        FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                           S(fwd)(act, alpha, hi - lo, cols, bias, z + lo * cols,
                                  y + lo * cols));
}

void S(fnn_act_backward)(int act, T alpha, ptrdiff_t rows, ptrdiff_t cols, const T *z,
                         const T *y, const T *gy, T *gz, T *gbias)
{
    if (!gbias) {
        /* A NULL z or y is never offset into use: D ignores that input. */
        FNN_PARALLEL_RANGE(rows * cols, lo, hi,
                           S(grad)(act, alpha, hi - lo, z ? z + lo : NULL, y ? y + lo : NULL,
                                   gy + lo, gz + lo));
        return;
    }
    /* Column blocks: each block's sums run over all rows in order, so the bias
     * gradient does not depend on the thread count. */
    FNN_FOR_COL_BLOCKS(rows, cols,
                       S(gcol)(act, alpha, rows, cols, j0, j1, z, y, gy, gz, gbias));
}
