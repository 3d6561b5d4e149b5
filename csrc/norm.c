/* Normalisation: batch norm (alone, or fused with the ReLU and dropout after it), row
 * norm (LayerNorm, GroupNorm, InstanceNorm), weight norm. */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"
#include "random.h"
#include "simd.h"
#include "generic/act_math.h"

#define FNN_GENERIC "generic/norm.h"
#include "instantiate.h"
