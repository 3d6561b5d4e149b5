/* Convolution as im2col + GEMM, chunk by chunk of samples.
 *
 * For a chunk of samples the input's receptive fields are laid out as columns,
 * col (C kh kw, chunk Ho Wo), and each group's output is one GEMM through BLAS,
 * out (K, chunk Ho Wo) = w (K, C kh kw) col. The epilogue moves out into the NCHW
 * output adding the bias and applying a fused activation in the same pass. Backward
 * mirrors it: one pass applies the activation's derivative while moving dL/dy into
 * (K, chunk Ho Wo) and summing the bias gradient per channel, then
 *     dL/dw += gz col^T        dL/dcol = w^T gz  -> col2im -> dL/dx
 * The columns are rebuilt in backward rather than kept: the scratch of one chunk is
 * all the memory a convolution needs, whatever the batch size.
 *
 * Determinism: the chunk size depends on the shape only, each GEMM is cut by shape
 * (gemm.c), every other pass writes disjoint outputs, and the bias sums are taken
 * channel by channel in a fixed order. */
#include <math.h>
#include <string.h>
#include "conv.h"
#include "parallel.h"
#include "simd.h"
#include "generic/act_math.h"

/* Columns per chunk at most (elements of col): a chunk's col and out then stay in L2/L3. */
#define FNN_CONV_CHUNK_ELEMS (1 << 20)

ptrdiff_t fnn_conv_chunk(const fnn_conv_geom *g)
{
    ptrdiff_t per = g->C * g->kh * g->kw * g->Ho * g->Wo;
    ptrdiff_t nb = per > 0 ? FNN_CONV_CHUNK_ELEMS / per : g->N;
    if (nb < 1) nb = 1;
    return nb < g->N ? nb : (g->N > 0 ? g->N : 1);
}

ptrdiff_t fnn_conv_scratch(const fnn_conv_geom *g)
{
    return (g->C * g->kh * g->kw + g->K) * fnn_conv_chunk(g) * g->Ho * g->Wo;
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
