/* Reflect, replicate and circular padding (pad.h). Each plane is one thread's work and
 * the backward sums into each input element in a fixed order, so results do not
 * depend on the thread count. */
#include <string.h>
#include "pad.h"
#include "parallel.h"

/* The input index that padded position i (0 <= i < pad + n + pad') copies along an
 * axis of length n with `pad` positions before it. */
static inline ptrdiff_t fnn_pad_source(ptrdiff_t i, ptrdiff_t n, ptrdiff_t pad, int mode)
{
    ptrdiff_t j = i - pad;
    if (j >= 0 && j < n) return j;
    switch (mode) {
    case FNN_PAD_REFLECT: return j < 0 ? -j : 2 * (n - 1) - j;
    case FNN_PAD_REPLICATE: return j < 0 ? 0 : n - 1;
    default: return j < 0 ? j + n : j - n; /* circular: pads never exceed n */
    }
}

#define FNN_GENERIC "generic/pad.h"
#include "instantiate.h"
