/* Losses fused with their gradients. */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"
#include "simd.h"

#define FNN_GENERIC "generic/loss.h"
#include "instantiate.h"
