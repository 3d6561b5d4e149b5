/* How kernels share work between threads. Internal to csrc/. */
#ifndef FASTNN_PARALLEL_H
#define FASTNN_PARALLEL_H

#include "fastnn.h"

/* Threads for a kernel touching `work` elements: one below the threshold. */
static inline int fnn_threads_for(ptrdiff_t work)
{
    return work >= FNN_PAR_MIN ? fnn_num_threads : 1;
}

/* Part t of nt near-equal contiguous parts of [0, n): [*lo, *hi). Parallel loops run
 * `for t in [0, nt)` so that every part is done even if the runtime grants fewer
 * threads than asked. */
static inline void fnn_split(ptrdiff_t n, int t, int nt, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t q = n / nt, r = n % nt;
    *lo = t * q + (t < r ? t : r);
    *hi = *lo + q + (t < r ? 1 : 0);
}

#endif
