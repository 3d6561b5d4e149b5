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

static void S(uniform_range)(T *x, ptrdiff_t lo, ptrdiff_t hi, uint64_t seed, T a, T span)
{
    FNN_BLOCK_RUNS(lo, hi, S(uniform_run)(x + lo, end - lo, (uint64_t)lo, seed, a, span))
}

void S(fnn_init_uniform)(ptrdiff_t n, T *x, uint64_t seed, double lo, double hi)
{
    T a = (T)lo, span = (T)(hi - lo);
    FNN_PARALLEL_RANGE(n, r0, r1, S(uniform_range)(x, r0, r1, seed, a, span));
}

/* Uniform on the open interval (0, 1), from the draw(s) of element k: 23 bits for float,
 * 52 for double, at odd multiples of half a step (never 0 or 1). */
static inline T S(open_uniform)(uint64_t key1, uint64_t key2, uint32_t k)
{
    if (sizeof(T) == sizeof(float))
        return ((T)(int32_t)(fnn_keyed_bits(key1, k) >> 9) + (T)0.5) * (T)0x1p-23;
    return (T)fnn_open_uniform(key1, key2, k);
}

/* x[0, n) = mean + std * ndtri(u) for elements [i0, i0 + n) of one 2^32 block. */
static FNN_CLONES void S(normal_run)(T *x, ptrdiff_t n, uint64_t i0, uint64_t seed, T mean,
                                      T std)
{
    uint64_t key1 = fnn_init_key(seed, i0 >> 32, 0), key2 = fnn_init_key(seed, i0 >> 32, 1);
    uint32_t base = (uint32_t)i0;
    if (sizeof(T) == sizeof(float)) {
#pragma omp simd
        for (ptrdiff_t i = 0; i < n; i++)
            x[i] = mean + std * (T)fnn_ndtrif((float)S(open_uniform)(key1, key2,
                                                                     base + (uint32_t)i));
    } else {
        for (ptrdiff_t i = 0; i < n; i++)
            x[i] = mean + std * (T)fnn_ndtri((double)S(open_uniform)(key1, key2,
                                                                     base + (uint32_t)i));
    }
}

/* Truncated normal: u mapped onto [p0, p1] of the CDF (in double), its quantile (refined
 * for double only) times `sign` (the interval is drawn mirrored into the lower half,
 * where p has its full relative precision), kept within [a, b] against rounding. */
static void S(trunc_run)(T *x, ptrdiff_t n, uint64_t i0, uint64_t seed, double mean,
                         double std, double p0, double p1, double sign, double a, double b)
{
    uint64_t key1 = fnn_init_key(seed, i0 >> 32, 0), key2 = fnn_init_key(seed, i0 >> 32, 1);
    uint32_t base = (uint32_t)i0;
    for (ptrdiff_t i = 0; i < n; i++) {
        double u = p0 + (p1 - p0) * fnn_open_uniform(key1, key2, base + (uint32_t)i);
        double v = mean + std * sign *
                              (sizeof(T) == sizeof(float) ? fnn_ndtri_approx(u) : fnn_ndtri(u));
        T t = (T)(v < a ? a : v > b ? b : v);
        x[i] = t < (T)a ? (T)a : t > (T)b ? (T)b : t; /* (a, b rounded to T inwards) */
    }
}

static void S(normal_range)(T *x, ptrdiff_t lo, ptrdiff_t hi, uint64_t seed, T mean, T std)
{
    FNN_BLOCK_RUNS(lo, hi, S(normal_run)(x + lo, end - lo, (uint64_t)lo, seed, mean, std))
}

void S(fnn_init_normal)(ptrdiff_t n, T *x, uint64_t seed, double mean, double std)
{
    T m = (T)mean, s = (T)std;
    FNN_PARALLEL_RANGE(n, r0, r1, S(normal_range)(x, r0, r1, seed, m, s));
}

static void S(trunc_range)(T *x, ptrdiff_t lo, ptrdiff_t hi, uint64_t seed, double mean,
                           double std, double p0, double p1, double sign, double a, double b)
{
    FNN_BLOCK_RUNS(lo, hi, S(trunc_run)(x + lo, end - lo, (uint64_t)lo, seed, mean, std, p0,
                                        p1, sign, a, b))
}

void S(fnn_init_trunc_normal)(ptrdiff_t n, T *x, uint64_t seed, double mean, double std,
                              double a, double b)
{
    /* standardised bounds, mirrored into the lower half when the interval lies above the
     * mean (ndtri(p0 + (p1 - p0) u) then never needs p near 1) */
    double lo = (a - mean) / std, hi = (b - mean) / std, sign = 1;
    if (lo > 0) {
        double t = lo;
        lo = -hi;
        hi = -t;
        sign = -1;
    }
    double p0 = fnn_ndtr(lo), p1 = fnn_ndtr(hi);
    FNN_PARALLEL_RANGE(n, r0, r1, S(trunc_range)(x, r0, r1, seed, mean, std, p0, p1, sign, a, b));
}
