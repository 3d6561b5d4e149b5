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
#define FNN_INFER_MAX_ROWS 256

static ptrdiff_t fnn_infer_block_rows(ptrdiff_t rows)
{
    ptrdiff_t r = rows / fnn_gemm_blocks / 16 * 16;
    return r < FNN_INFER_MIN_ROWS ? FNN_INFER_MIN_ROWS
                                  : (r > FNN_INFER_MAX_ROWS ? FNN_INFER_MAX_ROWS : r);
}

/* Fewer rows: per layer, the output features are cut into blocks small enough for the
 * BLAS's small-matrix path (OpenBLAS: up to FNN_INFER_SMALL multiply-adds per call, no
 * packing of the weights; at batch 16 of the reference model a single call spent more
 * time packing the weights than multiplying, and the blocks were 2.5x faster), in
 * multiples of 16 features. The blocks are shared between threads from
 * FNN_INFER_PAR_WORK multiply-adds per layer on; the cut depends on the shape only. */
#define FNN_INFER_SMALL 1000000
#define FNN_INFER_PAR_WORK (4 << 20)

static ptrdiff_t fnn_infer_col_block(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t c = FNN_INFER_SMALL / (rows * k) / 16 * 16;
    return c < 16 ? 16 : (c > n ? n : c);
}

#define FNN_GENERIC "generic/infer.h"
#include "instantiate.h"
