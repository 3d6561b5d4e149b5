/* Dropout masks from the counter-based generator of random.h. */
#include "fastnn.h"
#include "parallel.h"
#include "random.h"
#include "simd.h"

uint32_t fnn_random_bits(uint64_t seed, uint64_t counter, uint64_t index)
{
    return fnn_keyed_bits(fnn_dropout_key(seed, counter), (uint32_t)index);
}

#define FNN_GENERIC "generic/dropout.h"
#include "instantiate.h"
