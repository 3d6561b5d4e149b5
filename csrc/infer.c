/* Inference: a chain of dense layers (batch norm already folded into their weights,
 * dropout dropped) evaluated in one call - per layer one product and one fused
 * bias + activation pass - with no Python between the layers.
 *
 * The product depends on the batch: a single row is a GEMV over the weights in place
 * (generic/infer.h: gemv_rows); in float32, 4 rows or more run on the register tiles
 * (generic/tile.h, shared with the convolutions) over a copy of the weights packed in
 * panels (wt): on one core of the reference model (784-512-512-10) 105-111 GFLOP/s
 * from 4 rows to 4096, against 27-106 for single-threaded OpenBLAS at 4-127 rows and
 * 89-97 at 256-4096 (it packs the weights on every call); 2-3 rows, and float64 (where
 * the tiles were no faster), go to BLAS. */
#include "infer.h"
#include <string.h>
#include "simd.h"
#include "team.h"
#include "tile.h"

/* From FNN_INFER_ROW_BLOCKS rows on, the rows are cut into blocks that run through
 * every layer one after another, the blocks claimed one at a time by the calling thread
 * and the helper team (team.h): a block's activations stay in its core's cache between
 * layers, the caller starts at once, and a helper the OS has parked or not yet woken
 * just takes fewer blocks; nobody waits at a barrier (in an OpenMP region with a block
 * per thread, a second thread starting late delayed the call by as much, and the
 * closing barrier waited for it even when no block was left for it). A block has about
 * rows / (FNN_INFER_BLOCKS_PER_THREAD * fnn_gemm_blocks) rows, several per thread on a
 * machine of fnn_gemm_blocks CPUs, so that a helper starting late costs a fraction of a
 * block; a multiple of 16 within [FNN_INFER_MIN_ROWS, FNN_INFER_MAX_ROWS]: a block's
 * input and its two activation buffers then stay within a core's L2 cache (128 x 784 +
 * 2 x 128 x 512 floats for the reference model), and BLAS (float64) packs the weights
 * once per block. On one core, blocks of 32, 64 and 128 rows took the same CPU time at
 * batch 256 (within the noise of a loaded machine). The cut depends on the shape and
 * the machine only, so results do not depend on the thread count. */
#define FNN_INFER_ROW_BLOCKS 128
#define FNN_INFER_MIN_ROWS 32
#define FNN_INFER_MAX_ROWS 128
#define FNN_INFER_BLOCKS_PER_THREAD 4

static ptrdiff_t fnn_infer_block_rows(ptrdiff_t rows)
{
    ptrdiff_t r = rows / (FNN_INFER_BLOCKS_PER_THREAD * fnn_gemm_blocks) / 16 * 16;
    r = r < FNN_INFER_MIN_ROWS ? FNN_INFER_MIN_ROWS
                               : (r > FNN_INFER_MAX_ROWS ? FNN_INFER_MAX_ROWS : r);
    /* Past FNN_TEAM_MAX_BLOCKS blocks (over half a million rows) a job would run on
     * the calling thread alone: longer blocks instead. */
    ptrdiff_t fewest = (rows + FNN_TEAM_MAX_BLOCKS - 1) / FNN_TEAM_MAX_BLOCKS;
    return r > fewest ? r : fewest;
}

/* Fewer rows: per layer, the output features are cut into blocks, each block's product
 * and epilogue one task, the tasks shared by a light team (team.h) from
 * FNN_INFER_TEAM_WORK multiply-adds per layer on (one core's reads of the weights from
 * the shared cache bound a one-row forward: on two threads the reference model's took
 * 18 us instead of 34 in a C loop; smaller layers stay on the calling thread). A single
 * row goes through gemv_rows in blocks of about FNN_INFER_GEMV_BLOCK multiply-adds (a
 * multiple of 4 features). More rows take blocks of about FNN_INFER_SMALL multiply-adds
 * in multiples of 48 features (whole tiles of 24 floats, whole BLAS micro-tiles of 16),
 * small enough for BLAS's small-matrix path (OpenBLAS does not pack the weights there:
 * at batch 16 of the reference model a single call spent more time packing than
 * multiplying, and the blocks were 2.5x faster). The cut depends on the shape only. */
#define FNN_INFER_SMALL 1000000
#define FNN_INFER_GEMV_BLOCK 32768
#define FNN_INFER_TEAM_WORK 65536

static ptrdiff_t fnn_infer_col_block(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t least = rows == 1 ? 4 : 48;
    ptrdiff_t work = rows == 1 ? FNN_INFER_GEMV_BLOCK : FNN_INFER_SMALL / rows;
    ptrdiff_t c = work / k / least * least;
    return c < least ? least : (c > n ? n : c);
}

_Static_assert(3 * 32 / sizeof(float) == FNN_DENSE_CHAIN_PANEL, "panels of 3 vectors");

#define FNN_GENERIC "generic/infer.h"
#include "instantiate.h"
