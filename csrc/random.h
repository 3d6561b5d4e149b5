/* The counter-based generator of dropout masks (internal to csrc/).
 *
 * Element k of call `counter` under `seed` keeps its value when
 *     bits(seed, counter, k) >= p * 2^32,
 * where bits() is a keyed 32-bit hash of k. Nothing is carried from element to element
 * or thread to thread, so a mask is the same for any thread count and can be
 * regenerated exactly from (seed, counter). The key is splitmix64 of seed and counter;
 * the per-element hash is two rounds of Wellons' lowbias32, which has full avalanche
 * and needs only 32-bit multiplies, so it vectorises with AVX2. */
#ifndef FASTNN_RANDOM_H
#define FASTNN_RANDOM_H

#include <stdint.h>

static inline uint64_t fnn_splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static inline uint32_t fnn_lowbias32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

static inline uint64_t fnn_dropout_key(uint64_t seed, uint64_t counter)
{
    return fnn_splitmix64(seed ^ fnn_splitmix64(counter));
}

static inline uint32_t fnn_keyed_bits(uint64_t key, uint32_t k)
{
    return fnn_lowbias32(fnn_lowbias32(k ^ (uint32_t)key) ^ (uint32_t)(key >> 32));
}

/* Threshold on the 32-bit draws for drop probability p in [0, 1). */
static inline uint32_t fnn_drop_threshold(double p)
{
    return (uint32_t)(p * 4294967296.0);
}

#endif
