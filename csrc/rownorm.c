/* Row normalisation: LayerNorm, GroupNorm and InstanceNorm. */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"
#include "simd.h"

#define FNN_GENERIC "generic/rownorm.h"
#include "instantiate.h"
