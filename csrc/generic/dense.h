/* Generic body of dense.c; see instantiate.h for T and S(). */

/* Derivative of the tanh-approximated GELU (torch's GeluBackward, approximate='tanh'). */
static inline T S(gelu_tanh_grad)(T z)
{
    const T kappa = (T)0.044715;
    T inner = FNN_GELU_K * (z + kappa * z * z * z);
    T t = TANH(inner);
    T left_d = (T)0.5 * ((T)1 + t);
    T right_d = (T)0.5 * z * ((T)1 - t * t) * FNN_GELU_K * ((T)1 + (T)3 * kappa * z * z);
    return left_d + right_d;
}

/* Per activation, three workers over a block of rows / columns:
 *   fwd:  y = F(z + bias) for `rows` rows (bias may be NULL; z gets z + bias when y != z)
 *   grad: gz = gy * D(z, y) elementwise over n elements
 *   gcol: the same over columns [j0, j1) of every row, plus gbias[j] += sum_i gz[i, j] */
#define FNN_DENSE_WORKERS(CODE, name, F, D, NEEDS_INPUT)                                   \
    static FNN_CLONES void S(fwd_##name)(T a, T b, ptrdiff_t rows, ptrdiff_t cols,              \
                                         const T *bias, T *z, T *y)                        \
    {                                                                                      \
        (void)a;                                                                           \
        (void)b;                                                                           \
        for (ptrdiff_t i = 0; i < rows; i++) {                                             \
            T *zr = z + i * cols, *yr = y + i * cols;                                      \
            if (!bias) {                                                                   \
                _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                   \
                {                                                                          \
                    T v = zr[j];                                                           \
                    yr[j] = F(v, a, b);                                                       \
                }                                                                          \
            } else if (y == z) {                                                           \
                _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                   \
                {                                                                          \
                    T v = zr[j] + bias[j];                                                 \
                    yr[j] = F(v, a, b);                                                       \
                }                                                                          \
            } else {                                                                       \
                _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                   \
                {                                                                          \
                    T v = zr[j] + bias[j];                                                 \
                    zr[j] = v;                                                             \
                    yr[j] = F(v, a, b);                                                       \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    static FNN_CLONES void S(grad_##name)(T a, T b, ptrdiff_t n, const T *z, const T *y,        \
                                          const T *gy, T *gz)                              \
    {                                                                                      \
        (void)a;                                                                           \
        (void)b;                                                                           \
        (void)z;                                                                           \
        (void)y;                                                                           \
        _Pragma("omp simd") for (ptrdiff_t k = 0; k < n; k++) gz[k] = gy[k] * D(z[k], y[k], a, b); \
    }                                                                                      \
    static FNN_CLONES void S(gcol_##name)(T a, T b, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0, \
                                          ptrdiff_t j1, const T *z, const T *y,            \
                                          const T *gy, T *gz, T *gbias)                    \
    {                                                                                      \
        (void)a;                                                                           \
        (void)b;                                                                           \
        (void)z;                                                                           \
        (void)y;                                                                           \
        double acc[FNN_COL_BLOCK] = {0};                                                   \
        for (ptrdiff_t i = 0; i < rows; i++) {                                             \
            ptrdiff_t r = i * cols;                                                        \
            _Pragma("omp simd") for (ptrdiff_t j = j0; j < j1; j++)                        \
            {                                                                              \
                T g = gy[r + j] * D(z[r + j], y[r + j], a, b);                                \
                gz[r + j] = g;                                                             \
                acc[j - j0] += g;                                                          \
            }                                                                              \
        }                                                                                  \
        for (ptrdiff_t j = j0; j < j1; j++) gbias[j] += (T)acc[j - j0];                    \
    }

FNN_FOR_EACH_ACT(FNN_DENSE_WORKERS)
#undef FNN_DENSE_WORKERS

/* Dispatch on the activation code to its workers. */
static inline void S(fwd)(int act, T a, T b, ptrdiff_t rows, ptrdiff_t cols, const T *bias, T *z,
                          T *y)
{
    switch (act) {
#define FNN_CASE(CODE, name, F, D, NI) \
    case CODE:                         \
        S(fwd_##name)(a, b, rows, cols, bias, z, y); \
        break;
        FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
    }
}

static inline void S(grad)(int act, T a, T b, ptrdiff_t n, const T *z, const T *y, const T *gy,
                           T *gz)
{
    switch (act) {
#define FNN_CASE(CODE, name, F, D, NI) \
    case CODE:                         \
        S(grad_##name)(a, b, n, z, y, gy, gz); \
        break;
        FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
    }
}

static inline void S(gcol)(int act, T a, T b, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0,
                           ptrdiff_t j1, const T *z, const T *y, const T *gy, T *gz,
                           T *gbias)
{
    switch (act) {
#define FNN_CASE(CODE, name, F, D, NI) \
    case CODE:                         \
        S(gcol_##name)(a, b, rows, cols, j0, j1, z, y, gy, gz, gbias); \
        break;
        FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
    }
}

void S(fnn_bias_act)(int act, T alpha, T beta, ptrdiff_t rows, ptrdiff_t cols, const T *bias,
                     T *z, T *y)
{
    if (!bias) /* elementwise: split the flat array, whatever its shape */
        FNN_PARALLEL_RANGE(rows * cols, lo, hi,
                           S(fwd)(act, alpha, beta, 1, hi - lo, NULL, z + lo, y + lo));
    else
        FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                           S(fwd)(act, alpha, beta, hi - lo, cols, bias, z + lo * cols,
                                  y + lo * cols));
}

void S(fnn_act_backward)(int act, T alpha, T beta, ptrdiff_t rows, ptrdiff_t cols, const T *z,
                         const T *y, const T *gy, T *gz, T *gbias)
{
    if (!gbias) {
        /* A NULL z or y is never offset into use: D ignores that input. */
        FNN_PARALLEL_RANGE(rows * cols, lo, hi,
                           S(grad)(act, alpha, beta, hi - lo, z ? z + lo : NULL, y ? y + lo : NULL,
                                   gy + lo, gz + lo));
        return;
    }
    /* Column blocks: each block's sums run over all rows in order, so the bias
     * gradient does not depend on the thread count. */
    FNN_FOR_COL_BLOCKS(rows * cols, cols,
                       S(gcol)(act, alpha, beta, rows, cols, j0, j1, z, y, gy, gz, gbias));
}
