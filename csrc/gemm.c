/* Matrix products through BLAS, split between fastnn's own threads.
 *
 * fastnn runs BLAS single-threaded and parallelises each large GEMM itself: one OpenMP
 * team then serves every kernel of a training step. With BLAS's own thread pool
 * alongside, the two pools' idle threads spin while the other pool works, and on a
 * machine with as many threads as cores a step slows down many times over. The
 * output is cut into blocks of whole rows (or columns) and each block is one
 * single-threaded BLAS call. How a product is cut depends on its shape alone, so
 * every thread count makes the same calls and gets bit-identical results.
 */
#include "fastnn.h"
#include "parallel.h"

/* A large product is cut into at most fnn_gemm_blocks blocks (runtime.c: a power of
 * two covering the machine's CPUs, fixed for the process), each of at least
 * FNN_GEMM_BLOCK_MIN multiply-adds (BLAS packs its operands once per block, a few
 * percent of the product's time) and with boundaries at multiples of FNN_GEMM_ALIGN
 * elements (whole micro-kernel tiles). */
#define FNN_GEMM_BLOCK_MIN (2 << 20)
#define FNN_GEMM_ALIGN 16

#define FNN_GENERIC "generic/gemm.h"
#include "instantiate.h"
