/* Activations that are not elementwise maps of one value: PReLU (learnable slopes),
 * Maxout, Softmax, Gaussian radial basis units, and the sum of two arrays rectified
 * (Add -> ReLU fused). The elementwise ones live with the Dense epilogue (dense.c,
 * generic/act_math.h). */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"
#include "simd.h"
#include "generic/act_math.h"

#define FNN_GENERIC "generic/activations.h"
#include "instantiate.h"
