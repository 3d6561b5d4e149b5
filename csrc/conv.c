/* Convolution as im2col + register-tiled products, chunk by chunk of samples.
 *
 * For a chunk of samples the input's receptive fields are laid out as columns, one
 * (C kh kw, Ho Wo) block per sample with rows padded to whole vectors, and each
 * group's output is the product w (K, C kh kw) col, computed by register tiles
 * (generic/conv.h) straight into the NCHW output, the bias and a fused activation
 * applied to each task's rows while they are in cache. Backward mirrors it: one pass
 * applies the activation's derivative to dL/dy and sums the bias gradient per
 * channel, then
 *     dL/dw += gz col^T        dL/dcol = w^T gz  -> col2im -> dL/dx
 * BLAS is not used: it packs both operands on every call, and for the short, wide
 * products of a convolution that costs as much as the arithmetic (the tiles run
 * 1.2-2.8x faster than single-threaded OpenBLAS on these shapes). The columns are
 * rebuilt in backward rather than kept: the scratch of one chunk is all the memory a
 * convolution needs, whatever the batch size.
 *
 * Determinism: the chunk size depends on the shape only, every task writes disjoint
 * outputs with a fixed order of summation, the weight gradient sums each chunk's
 * samples in order, and the bias sums are taken channel by channel in a fixed order:
 * the results do not depend on the thread count. */
#include <math.h>
#include <string.h>
#include "conv.h"
#include "parallel.h"
#include "simd.h"
#include "generic/act_math.h"

/* Elements of col per chunk at most: 2 MiB of float, the chunk's columns stay in the
 * L2 caches between being built and being read by the products. */
#define FNN_CONV_CHUNK_ELEMS (1 << 19)

/* Row stride of the columns and of dL/dz: Ho Wo rounded up to whole vectors (8 floats
 * or 4 doubles), the padding kept at 0, and 8 more where the stride would be a multiple
 * of 64 elements: rows a power of two apart map to the same L1 sets, and a tile reading
 * one vector from each of C kh kw rows would evict itself. */
static inline ptrdiff_t fnn_conv_ld(const fnn_conv_geom *g)
{
    ptrdiff_t ld = (g->Ho * g->Wo + 7) / 8 * 8;
    return ld % 64 ? ld : ld + 8;
}

ptrdiff_t fnn_conv_chunk(const fnn_conv_geom *g)
{
    ptrdiff_t per = g->C * g->kh * g->kw * fnn_conv_ld(g);
    ptrdiff_t nb = per > 0 ? FNN_CONV_CHUNK_ELEMS / per : g->N;
    if (nb < 1) nb = 1;
    return nb < g->N ? nb : (g->N > 0 ? g->N : 1);
}

ptrdiff_t fnn_conv_scratch(const fnn_conv_geom *g)
{
    ptrdiff_t ckk = g->C / (g->groups > 0 ? g->groups : 1) * g->kh * g->kw;
    return (g->C * g->kh * g->kw + g->K) * fnn_conv_chunk(g) * fnn_conv_ld(g) + g->K * ckk;
}

/* The outputs o in [0, nout) whose input position o s - off lies in [0, n): [*lo, *hi). */
static inline void fnn_out_range(ptrdiff_t n, ptrdiff_t s, ptrdiff_t off, ptrdiff_t nout,
                                 ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t l = off > 0 ? (off + s - 1) / s : 0;
    ptrdiff_t top = n - 1 + off;
    ptrdiff_t h = top < 0 ? 0 : top / s + 1;
    if (h > nout) h = nout;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

#define FNN_GENERIC "generic/conv.h"
#include "instantiate.h"
