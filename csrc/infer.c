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

#define FNN_GENERIC "generic/infer.h"
#include "instantiate.h"
