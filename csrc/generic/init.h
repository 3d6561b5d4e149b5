/* Generic body of init.c; see instantiate.h for T and S(). */

/* Uniform [0, 1) from the draw(s) of element k: 24 bits for float, 53 for double. */
static inline T S(unit_uniform)(uint64_t key1, uint64_t key2, uint32_t k)
{
    if (sizeof(T) == sizeof(float))
        return (T)(int32_t)(fnn_keyed_bits(key1, k) >> 8) * (T)0x1p-24;
    double a = (double)(int32_t)(fnn_keyed_bits(key1, k) >> 5);
    double b = (double)(int32_t)(fnn_keyed_bits(key2, k) >> 6);
    return (T)((a * 67108864.0 + b) * 0x1p-53);
}

/* x[0, n) = lo + span * u for elements [i0, i0 + n) of one 2^32 block. */
static FNN_CLONES void S(uniform_run)(T *x, ptrdiff_t n, uint64_t i0, uint64_t seed, T lo,
                                       T span)
{
    uint64_t key1 = fnn_init_key(seed, i0 >> 32, 0), key2 = fnn_init_key(seed, i0 >> 32, 1);
    uint32_t base = (uint32_t)i0;
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++)
        x[i] = lo + span * S(unit_uniform)(key1, key2, base + (uint32_t)i);
}

/* Block i of 2^32 elements has its own keys: runs never cross a block boundary. */
static void S(uniform_range)(T *x, ptrdiff_t lo, ptrdiff_t hi, uint64_t seed, T a, T span)
{
    while (lo < hi) {
        ptrdiff_t end = (ptrdiff_t)((((uint64_t)lo >> 32) + 1) << 32);
        if (end > hi) end = hi;
        S(uniform_run)(x + lo, end - lo, (uint64_t)lo, seed, a, span);
        lo = end;
    }
}

void S(fnn_init_uniform)(ptrdiff_t n, T *x, uint64_t seed, double lo, double hi)
{
    T a = (T)lo, span = (T)(hi - lo);
    FNN_PARALLEL_RANGE(n, r0, r1, S(uniform_range)(x, r0, r1, seed, a, span));
}
