/* Weight initialisation kernel (init.c): fill x[0, n) in place with draws that depend
 * only on (seed, element index), for any thread count. */
#ifndef FASTNN_INIT_H
#define FASTNN_INIT_H

#include <stddef.h>
#include <stdint.h>

/* Uniform on [lo, hi). */
void fnn_init_uniform_f32(ptrdiff_t n, float *x, uint64_t seed, double lo, double hi);
void fnn_init_uniform_f64(ptrdiff_t n, double *x, uint64_t seed, double lo, double hi);

#endif
