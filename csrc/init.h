/* Weight initialisation kernel (init.c): fill x[0, n) in place with draws that depend
 * only on (seed, element index), for any thread count. */
#ifndef FASTNN_INIT_H
#define FASTNN_INIT_H

#include <stddef.h>
#include <stdint.h>

/* Uniform on [lo, hi). */
void fnn_init_uniform_f32(ptrdiff_t n, float *x, uint64_t seed, double lo, double hi);
void fnn_init_uniform_f64(ptrdiff_t n, double *x, uint64_t seed, double lo, double hi);

/* N(mean, std^2): the inverse normal CDF of a uniform draw of each element. */
void fnn_init_normal_f32(ptrdiff_t n, float *x, uint64_t seed, double mean, double std);
void fnn_init_normal_f64(ptrdiff_t n, double *x, uint64_t seed, double mean, double std);

/* N(mean, std^2) restricted to [a, b] (std > 0, a < b): the quantile of a uniform draw
 * over the interval's share of the CDF, so no draw is rejected. */
void fnn_init_trunc_normal_f32(ptrdiff_t n, float *x, uint64_t seed, double mean, double std,
                               double a, double b);
void fnn_init_trunc_normal_f64(ptrdiff_t n, double *x, uint64_t seed, double mean,
                               double std, double a, double b);

#endif
