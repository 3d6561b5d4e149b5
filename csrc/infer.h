/* Eval-mode forward of a chain of dense layers in one call (infer.c). Internal to
 * csrc/ and its binding (fastnn/_kernels_infer.pxi). */
#ifndef FASTNN_INFER_H
#define FASTNN_INFER_H

#include "fastnn.h"

/* y_l = act_l(y_{l-1} W_l^T + b_l) for l = 0..nlayers-1, y_{-1} = x (rows, dims[0]);
 * W_l (dims[l+1], dims[l]) row-major, b_l (dims[l+1]) or NULL, act/alpha/beta the
 * activation code and parameters of each layer; the last layer writes out
 * (rows, dims[nlayers]). wt: NULL, or per layer W_l^T in panels of
 * FNN_DENSE_CHAIN_PANEL columns (3 vectors; float32 only), (ceil(dims[l+1] / panel),
 * dims[l], panel) C-contiguous and 32-byte aligned, the columns past dims[l+1] zero
 * (then batches of FNN_DENSE_CHAIN_TILE_ROWS rows or more run on register tiles
 * instead of BLAS). buf: 2 * rows * max(dims[1..nlayers-1]) elements of scratch. */
/* From this many rows on, the products run on register tiles when wt is given. */
#ifndef FNN_DENSE_CHAIN_TILE_ROWS
#define FNN_DENSE_CHAIN_TILE_ROWS 4
#endif

/* Columns per panel of a float32 chain's wt (3 vectors of 8). */
#define FNN_DENSE_CHAIN_PANEL 24

#define FNN_DECLARE_INFER(T, S)                                                          \
    void S(fnn_dense_chain)(S(fnn_blas_gemm) gemm, int nlayers, const ptrdiff_t *dims, \
                            const T *const *w, const T *const *wt, const T *const *b,  \
                            const int *act,                                            \
                            const double *alpha, const double *beta, ptrdiff_t rows,   \
                            const T *x, T *out, T *buf);

#define FNN_INFER_S32(name) name##_f32
#define FNN_INFER_S64(name) name##_f64
FNN_DECLARE_INFER(float, FNN_INFER_S32)
FNN_DECLARE_INFER(double, FNN_INFER_S64)
#undef FNN_DECLARE_INFER
#undef FNN_INFER_S32
#undef FNN_INFER_S64

#endif
