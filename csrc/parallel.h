/* How kernels share work between threads. Internal to csrc/. */
#ifndef FASTNN_PARALLEL_H
#define FASTNN_PARALLEL_H

#include "fastnn.h"

/* Threads for a kernel touching `work` elements: one below the threshold. */
static inline int fnn_threads_for(ptrdiff_t work)
{
    return work >= FNN_PAR_MIN ? fnn_num_threads : 1;
}

/* Column sums (colsum.c): fn(r0, r1, acc, ctx) adds the contributions of rows
 * [r0, r1) to acc[0..width); fnn_column_sums runs it over fixed row chunks in
 * parallel and adds the chunks' sums in order into scratch[0..width). scratch holds
 * FNN_COLSUM_SCRATCH(width) doubles. */
typedef void (*fnn_rowchunk_fn)(ptrdiff_t r0, ptrdiff_t r1, double *acc, void *ctx);
void fnn_column_sums(ptrdiff_t rows, ptrdiff_t width, fnn_rowchunk_fn fn, void *ctx,
                     double *scratch);

/* Part t of nt near-equal contiguous parts of [0, n): [*lo, *hi). Parallel loops run
 * `for t in [0, nt)` so that every part is done even if the runtime grants fewer
 * threads than asked. */
static inline void fnn_split(ptrdiff_t n, int t, int nt, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t q = n / nt, r = n % nt;
    *lo = t * q + (t < r ? t : r);
    *hi = *lo + q + (t < r ? 1 : 0);
}

/* Run the statements after (n, work, lo, hi) on near-equal parts [lo, hi) of [0, n),
 * one part per thread, on fnn_threads_for(work) threads (work: the elements touched,
 * which decides whether threads pay off). The statements may contain commas. */
#define FNN_PARALLEL_SPLIT(n, work, lo, hi, ...)                                     \
    do {                                                                             \
        ptrdiff_t fnn_n_ = (n);                                                      \
        int fnn_nt_ = fnn_threads_for(work);                                         \
        if (fnn_nt_ > fnn_n_) fnn_nt_ = fnn_n_ > 0 ? (int)fnn_n_ : 1;                 \
        if (fnn_nt_ == 1) { /* no team at all: a one-thread region still costs */    \
            ptrdiff_t lo = 0, hi = fnn_n_;                                           \
            __VA_ARGS__;                                                             \
        } else {                                                                     \
            _Pragma("omp parallel for schedule(static) num_threads(fnn_nt_)")        \
            for (int fnn_t_ = 0; fnn_t_ < fnn_nt_; fnn_t_++) {                       \
                ptrdiff_t lo, hi;                                                    \
                fnn_split(fnn_n_, fnn_t_, fnn_nt_, &lo, &hi);                        \
                __VA_ARGS__;                                                         \
            }                                                                        \
        }                                                                            \
    } while (0)

/* FNN_PARALLEL_SPLIT of an elementwise range: [0, n) touching n elements. */
#define FNN_PARALLEL_RANGE(n, lo, hi, ...) FNN_PARALLEL_SPLIT(n, n, lo, hi, __VA_ARGS__)

/* Hand blocks of FNN_COL_BLOCK columns (or channels) out of `cols` to threads, for a
 * kernel touching `work` elements; the statements see the block as [j0, j1). */
#define FNN_FOR_COL_BLOCKS(work, cols, ...)                                              \
    FNN_PARALLEL_SPLIT(((cols) + FNN_COL_BLOCK - 1) / FNN_COL_BLOCK, (work), b0,          \
                       b1, for (ptrdiff_t b = b0; b < b1; b++) {                           \
                           ptrdiff_t j0 = b * FNN_COL_BLOCK;                               \
                           ptrdiff_t j1 = j0 + FNN_COL_BLOCK < (cols) ? j0 + FNN_COL_BLOCK \
                                                                      : (cols);            \
                           __VA_ARGS__;                                                    \
                       })

#endif
