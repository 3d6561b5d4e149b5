/* Pooling over (N C) planes: max (keeping the argmax for backward), average (torch's
 * padding and divisor rules) and adaptive average. Each plane is one thread's work,
 * so every result is the same for any thread count. */
#include <math.h>
#include <string.h>
#include "conv.h"
#include "parallel.h"
#include "simd.h"

/* Cell i of n over an axis of length len: [i len / n, ceil((i + 1) len / n)). */
static inline void fnn_adaptive_cell(ptrdiff_t i, ptrdiff_t n, ptrdiff_t len, ptrdiff_t *lo,
                                     ptrdiff_t *hi)
{
    *lo = i * len / n;
    *hi = ((i + 1) * len + n - 1) / n;
}

#define FNN_GENERIC "generic/pool.h"
#include "instantiate.h"
