/* Inference: a chain of dense layers (batch norm already folded into their weights,
 * dropout dropped) evaluated in one call - per layer one GEMM and one fused
 * bias + activation pass - with no Python between the layers.
 *
 * Small batches take no thread team: fnn_gemm makes a product below its blocking
 * threshold one single-threaded BLAS call, and the epilogue of a few rows is below
 * FNN_PAR_MIN. A single row uses the same GEMM: against gemv('T') through the same
 * OpenBLAS it was as fast or faster (784-512-512-10, float32 and float64), and on a
 * loaded machine a team's barrier for one row waits for whichever thread the OS has
 * parked (2-thread row-split GEMV: 10x slower under load). */
#include "infer.h"
#include <string.h>
#include "simd.h"
#include "team.h"
#include "tile.h"

/* From FNN_INFER_MIN_ROWS * 2 rows on, the rows are cut into blocks that run through
 * every layer one after another, blocks handed out dynamically to the threads: one
 * parallel region per call, the activations of a block stay in its core's cache
 * between layers, and a thread the OS has parked just takes fewer blocks (a thread that
 * finishes its block takes the next one not yet started). A block has
 * rows / fnn_gemm_blocks rows (one per thread on a machine of fnn_gemm_blocks CPUs), a
 * multiple of 16 within [FNN_INFER_MIN_ROWS, FNN_INFER_MAX_ROWS]: BLAS packs the
 * weights once per block, and on one thread of the reference model (784-512-512-10,
 * float32) 256 rows took 7% less time as two blocks of 128 than as four of 64, 11% less
 * as one of 256. The cut depends on the shape and the machine only, so results do not
 * depend on the thread count. */
#define FNN_INFER_MIN_ROWS 64
#define FNN_INFER_MAX_ROWS 128

static ptrdiff_t fnn_infer_block_rows(ptrdiff_t rows)
{
    ptrdiff_t r = rows / fnn_gemm_blocks / 16 * 16;
    return r < FNN_INFER_MIN_ROWS ? FNN_INFER_MIN_ROWS
                                  : (r > FNN_INFER_MAX_ROWS ? FNN_INFER_MAX_ROWS : r);
}

/* Fewer rows: per layer, the output features are cut into blocks, each block's product
 * and epilogue one task, the tasks shared by a light team (team.h) from
 * FNN_INFER_TEAM_WORK multiply-adds per layer on (a one-sample forward of the reference
 * model takes about 1/3 less time on two threads: one core's reads of the weights
 * from the shared cache bound it). A single row goes through gemv_rows in blocks of
 * about FNN_INFER_GEMV_BLOCK multiply-adds (a multiple of 4 features). More rows go to
 * the BLAS in blocks small enough for its small-matrix path (OpenBLAS: up to
 * FNN_INFER_SMALL multiply-adds per call, no packing of the weights; at batch 16 of
 * the reference model a single call spent more time packing the weights than
 * multiplying, and the blocks were 2.5x faster), in multiples of 16 features. The cut
 * depends on the shape only. */
#define FNN_INFER_SMALL 1000000
#define FNN_INFER_GEMV_BLOCK 32768
#define FNN_INFER_TEAM_WORK 65536

static ptrdiff_t fnn_infer_col_block(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t least = rows == 1 ? 4 : 48;
    ptrdiff_t c = (rows == 1 ? FNN_INFER_GEMV_BLOCK / k : FNN_INFER_SMALL / (rows * k)) / least * least;
    return c < least ? least : (c > n ? n : c);
}

ptrdiff_t fnn_dense_chain_wt_stride(ptrdiff_t n) { return fnn_tile_row_stride(n); }

#define FNN_GENERIC "generic/infer.h"
#include "instantiate.h"
