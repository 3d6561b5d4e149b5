/* Batch normalisation over the rows of a (rows, cols) matrix. */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"
#include "simd.h"

#define FNN_GENERIC "generic/norm.h"
#include "instantiate.h"
