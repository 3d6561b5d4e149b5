/* Register-tile products (generic/tile.h): how their b operand's rows are addressed.
 * Internal to csrc/ (conv.c, infer.c). */
#ifndef FASTNN_TILE_H
#define FASTNN_TILE_H

#include <stddef.h>

/* Where row p = (c kh + i) kw + j of the b operand of a product starts: at
 * c sc + i si + j sj. The rows of im2col columns are {1, 1, row stride, 0, 0}; those
 * of a stride-1 convolution read in place are the shifted windows of padded planes,
 * {kh, kw, plane, dh Wp, dw}. */
typedef struct {
    ptrdiff_t kh, kw, sc, si, sj;
} fnn_rows;

static inline ptrdiff_t fnn_row_offset(const fnn_rows *r, ptrdiff_t p)
{
    ptrdiff_t kk = r->kh * r->kw;
    return p / kk * r->sc + p % kk / r->kw * r->si + p % r->kw * r->sj;
}

/* The rows of a b operand that are not evenly spaced: row p starts at off[p] (the
 * phase planes of a strided convolution, and its dL/dz for dL/dx, conv.c). */
typedef struct {
    const ptrdiff_t *off;
} fnn_taps;

#endif
