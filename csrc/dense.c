/* Dense-layer epilogues: bias + activation after the GEMM, and activation derivative +
 * bias-gradient reduction before the backward GEMMs. Standalone activation layers use
 * the same kernels with no bias. */
#include <math.h>
#include "fastnn.h"
#include "parallel.h"
#include "simd.h"
#include "generic/act_math.h"

int fnn_act_needs_input(int act)
{
    switch (act) {
#define FNN_NEEDS_INPUT_CASE(CODE, name, F, D, NEEDS_INPUT) \
    case CODE:                                             \
        return NEEDS_INPUT;
        FNN_FOR_EACH_ACT(FNN_NEEDS_INPUT_CASE)
#undef FNN_NEEDS_INPUT_CASE
    default:
        return 1;
    }
}

#define FNN_GENERIC "generic/dense.h"
#include "instantiate.h"
