/* Batch normalisation over (N, C, ...) input, and BatchNorm1d -> ReLU -> Dropout fused
 * into two passes (the fused kernels reuse batch norm's (N, C) statistics pass). */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"
#include "random.h"
#include "simd.h"
#include "generic/act_math.h"

#define FNN_GENERIC "generic/batchnorm.h"
#include "instantiate.h"
#undef FNN_GENERIC

#define FNN_GENERIC "generic/bn_relu_dropout.h"
#include "instantiate.h"
