/* Optimizer updates: one fused pass over flat parameter, gradient and state buffers.
 * Hyper-parameters arrive as double and are rounded to T once per call, as torch does
 * with its Python-float scalars. */
#include <math.h>
#include <string.h>
#include "fastnn.h"
#include "parallel.h"
#include "simd.h"

#define FNN_GENERIC "generic/optim.h"
#include "instantiate.h"
