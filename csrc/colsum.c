/* Column sums over the rows of a matrix, in parallel and deterministic.
 *
 * The rows are cut into chunks whose number depends on the row count only; each chunk
 * accumulates its partial sums (in double) reading whole rows, contiguously, and the
 * partials are then added chunk by chunk in order. Any thread count gives the same
 * bits, and memory is read row by row at full bandwidth. */
#include "fastnn.h"
#include "parallel.h"

/* Rows per chunk at least (chunks at most: FNN_ROW_CHUNKS, fastnn.h). */
#define FNN_ROW_CHUNK_MIN 64

void fnn_column_sums(ptrdiff_t rows, ptrdiff_t width, fnn_rowchunk_fn fn, void *ctx,
                     double *scratch)
{
    ptrdiff_t nchunks = rows / FNN_ROW_CHUNK_MIN;
    if (nchunks < 1) nchunks = 1;
    if (nchunks > FNN_ROW_CHUNKS) nchunks = FNN_ROW_CHUNKS;
    double *out = scratch, *part = scratch + width;
    FNN_PARALLEL_SPLIT(nchunks, rows * width, c0, c1,
                       for (ptrdiff_t c = c0; c < c1; c++) {
                           double *acc = part + c * width;
                           ptrdiff_t r0, r1;
                           for (ptrdiff_t j = 0; j < width; j++) acc[j] = 0;
                           fnn_split(rows, (int)c, (int)nchunks, &r0, &r1);
                           fn(r0, r1, acc, ctx);
                       });
    for (ptrdiff_t j = 0; j < width; j++) out[j] = part[j];
    for (ptrdiff_t c = 1; c < nchunks; c++) {
        const double *p = part + c * width;
        for (ptrdiff_t j = 0; j < width; j++) out[j] += p[j];
    }
}
