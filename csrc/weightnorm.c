/* Weight normalisation: w = g * v / |v| over the rows of v. */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"

#define FNN_GENERIC "generic/weightnorm.h"
#include "instantiate.h"
