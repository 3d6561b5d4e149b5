/* Activations that are not elementwise maps of one value: PReLU (learnable slopes),
 * Maxout, Softmax and Gaussian radial basis units. The elementwise ones live with the
 * Dense epilogue (dense.c, generic/act_math.h). */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"
#include "simd.h"

#define FNN_GENERIC "generic/activations.h"
#include "instantiate.h"
