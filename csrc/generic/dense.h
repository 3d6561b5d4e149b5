/* Generic body of dense.c; see instantiate.h for T and S(). */

#include "act_grad.h"

/* Per activation, three workers over a block of rows / columns:
 *   fwd:  y = F(z + bias) for `rows` rows (bias may be NULL; z gets z + bias when y != z)
 *   grad: gz = gy * D(z, y) elementwise over n elements
 *   grow: the same over rows [r0, r1), adding the column sums of gz to acc (gz may
 *         be NULL: sums only) */
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
    static FNN_CLONES void S(grow_##name)(T a, T b, ptrdiff_t r0, ptrdiff_t r1,            \
                                          ptrdiff_t cols, const T *z, const T *y,         \
                                          const T *gy, T *gz, double *acc)                \
    {                                                                                      \
        (void)a;                                                                           \
        (void)b;                                                                           \
        (void)z;                                                                           \
        (void)y;                                                                           \
        ptrdiff_t i = r0;                                                                  \
        /* Two rows at a time: the accumulators are loaded and stored half as often. */    \
        for (; i + 2 <= r1; i += 2) {                                                      \
            ptrdiff_t r = i * cols, s = r + cols;                                          \
            if (gz) {                                                                      \
                _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                   \
                {                                                                          \
                    T g0 = gy[r + j] * D(z[r + j], y[r + j], a, b);                        \
                    T g1 = gy[s + j] * D(z[s + j], y[s + j], a, b);                        \
                    gz[r + j] = g0;                                                        \
                    gz[s + j] = g1;                                                        \
                    acc[j] += (double)g0 + g1;                                             \
                }                                                                          \
            } else {                                                                       \
                _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                   \
                    acc[j] += (double)(gy[r + j] * D(z[r + j], y[r + j], a, b)) +          \
                              gy[s + j] * D(z[s + j], y[s + j], a, b);                     \
            }                                                                              \
        }                                                                                  \
        for (; i < r1; i++) {                                                              \
            ptrdiff_t r = i * cols;                                                        \
            _Pragma("omp simd") for (ptrdiff_t j = 0; j < cols; j++)                       \
            {                                                                              \
                T g = gy[r + j] * D(z[r + j], y[r + j], a, b);                             \
                if (gz) gz[r + j] = g;                                                     \
                acc[j] += g;                                                               \
            }                                                                              \
        }                                                                                  \
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

/* Context of the bias-gradient reduction (fnn_column_sums calls back with row chunks). */
struct S(grad_ctx) {
    int act;
    T a, b;
    ptrdiff_t cols;
    const T *z, *y, *gy;
    T *gz;
};

static void S(grad_rows)(ptrdiff_t r0, ptrdiff_t r1, double *acc, void *vctx)
{
    struct S(grad_ctx) *c = vctx;
    switch (c->act) {
#define FNN_CASE(CODE, name, F, D, NI) \
    case CODE:                         \
        S(grow_##name)(c->a, c->b, r0, r1, c->cols, c->z, c->y, c->gy, c->gz, acc); \
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
                         const T *y, const T *gy, T *gz, T *gbias, double *scratch)
{
    if (!gbias) {
        /* A NULL z or y is never offset into use: D ignores that input. */
        FNN_PARALLEL_RANGE(rows * cols, lo, hi,
                           S(grad)(act, alpha, beta, hi - lo, z ? z + lo : NULL, y ? y + lo : NULL,
                                   gy + lo, gz + lo));
        return;
    }
    /* One pass: the derivative and the bias gradient's column sums over row chunks
     * (the same for any thread count). Without gz, only the sums (gz would be gy). */
    struct S(grad_ctx) ctx = {act, alpha, beta, cols, z, y, gy, gz};
    fnn_column_sums(rows, cols, S(grad_rows), &ctx, scratch);
    for (ptrdiff_t j = 0; j < cols; j++) gbias[j] += (T)scratch[j];
}
