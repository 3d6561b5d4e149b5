/* Weight initialisation at memory speed: uniform draws from the counter-based
 * generator of random.h, filled in place. (Normal draws are NumPy's, also in place:
 * a Box-Muller pass here was slower than NumPy's ziggurat.)
 *
 * Element i of a draw under `seed` is a pure function of (seed, i): 32-bit keyed
 * hashes of the low half of i under a key made from seed and the high half. Nothing
 * is carried between elements, so the result is the same for every thread count and
 * the loops vectorise; no temporary array is allocated. */
#include "fastnn.h"
#include "parallel.h"
#include "random.h"
#include "simd.h"
#include "init.h"

/* Key of the elements whose index has high half `hi` (one key per 2^32 elements), and
 * a second independent key for the second 32 bits of a double. */
static inline uint64_t fnn_init_key(uint64_t seed, uint64_t hi, int second)
{
    return fnn_splitmix64(seed ^ fnn_splitmix64(2 * hi + (uint64_t)second));
}

#define FNN_GENERIC "generic/init.h"
#include "instantiate.h"
