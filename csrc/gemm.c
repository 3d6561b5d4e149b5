/* Matrix products through BLAS, split between fastnn's own threads.
 *
 * fastnn runs BLAS single-threaded and parallelises each large GEMM itself: one OpenMP
 * team then serves every kernel of a training step. With BLAS's own thread pool
 * alongside, the two pools' idle threads spin while the other pool works, and on a
 * machine with as many threads as cores a step slows down many times over. The
 * output is cut into blocks of whole rows (or columns) aligned to FNN_GEMM_ALIGN, and
 * each block is one single-threaded BLAS call; every output element is computed by
 * the same BLAS code for any block split, so results do not depend on the thread count.
 */
#include "fastnn.h"
#include "parallel.h"

/* Block boundaries are multiples of this, so BLAS's micro-kernels tile each block as
 * they tile the whole product. */
#define FNN_GEMM_ALIGN 64

/* Products below this many multiply-adds run as one call, and no block is smaller
 * than FNN_GEMM_BLOCK_MIN (above OpenBLAS's small-matrix kernels' range). */
#define FNN_GEMM_PAR_MIN (1 << 20)
#define FNN_GEMM_BLOCK_MIN (2 << 20)

#define FNN_GENERIC "generic/gemm.h"
#include "instantiate.h"
