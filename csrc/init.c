/* Weight initialisation at memory speed: uniform and normal draws from the
 * counter-based generator of random.h, filled in place.
 *
 * Normal draws are the inverse normal CDF of a uniform draw (one per element, no
 * rejection, no pairs): in float a branch-free rational approximation with the
 * vectorising logf of vmath.h, so the loop runs 8 elements at a time; in double the
 * same approximation refined to full precision. A truncated normal maps the uniform
 * onto the interval's share of the CDF, so it needs no rejection either.
 *
 * Element i of a draw under `seed` is a pure function of (seed, i): 32-bit keyed
 * hashes of the low half of i under a key made from seed and the high half. Nothing
 * is carried between elements, so the result is the same for every thread count and
 * the loops vectorise; no temporary array is allocated. */
#include <math.h>

#include "fastnn.h"
#include "parallel.h"
#include "random.h"
#include "simd.h"
#include "vmath.h"
#include "init.h"

/* Key of the elements whose index has high half `hi` (one key per 2^32 elements), and
 * a second independent key for the second 32 bits of a double. */
static inline uint64_t fnn_init_key(uint64_t seed, uint64_t hi, int second)
{
    return fnn_splitmix64(seed ^ fnn_splitmix64(2 * hi + (uint64_t)second));
}

/* Block i of 2^32 elements has its own keys: a fill runs `run` on [lo, end) for each
 * block its range [lo, hi) meets, never across a block boundary. */
#define FNN_BLOCK_RUNS(lo, hi, run)                                                        \
    while (lo < hi) {                                                                      \
        ptrdiff_t end = (ptrdiff_t)((((uint64_t)lo >> 32) + 1) << 32);                     \
        if (end > hi) end = hi;                                                            \
        run;                                                                               \
        lo = end;                                                                          \
    }

/* Uniform on the open interval (0, 1) in double from element k's two draws: 52 bits,
 * at odd multiples of 2^-53 (never 0 or 1). */
static inline double fnn_open_uniform(uint64_t key1, uint64_t key2, uint32_t k)
{
    double a = (double)(int32_t)(fnn_keyed_bits(key1, k) >> 6);
    double b = (double)(int32_t)(fnn_keyed_bits(key2, k) >> 6);
    return (a * 67108864.0 + b + 0.5) * 0x1p-52;
}

/* Acklam's rational approximation of the standard normal quantile (relative error
 * below 1.2e-9): a central formula for p in [P_LOW, 1 - P_LOW], a tail formula in
 * q = sqrt(-2 ln p) beyond (mirrored for the upper tail). */
#define P_LOW 0.02425
static const double ndtri_a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                  -2.759285104469687e+02, 1.383577518672690e+02,
                                  -3.066479806614716e+01, 2.506628277459239e+00};
static const double ndtri_b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                  -1.556989798598866e+02, 6.680131188771972e+01,
                                  -1.328068155288572e+01};
static const double ndtri_c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                  -2.400758277161838e+00, -2.549732539343734e+00,
                                  4.374664141464968e+00,  2.938163982698783e+00};
static const double ndtri_d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
                                  2.445134137142996e+00, 3.754408661907416e+00};

/* Float quantile for p in (0, 1): both formulas evaluated, one selected, so that a
 * loop calling it vectorises. The rational functions run in double (the central one
 * cancels to a few bits near its ends in float); the tail's log is vmath.h's logf
 * (3 ulp, which the tail formula does not amplify). */
FNN_VINLINE float fnn_ndtrif(float p)
{
    double q = (double)p - 0.5, r = q * q;
    double cnum = ndtri_a[0], cden = ndtri_b[0];
    for (int i = 1; i < 6; i++) cnum = cnum * r + ndtri_a[i];
    for (int i = 1; i < 5; i++) cden = cden * r + ndtri_b[i];
    float tail_p = p < 0.5f ? p : 1.0f - p; /* exact: Sterbenz */
    double t = sqrt(-2.0 * (double)fnn_logf(tail_p));
    double tnum = ndtri_c[0], tden = ndtri_d[0];
    for (int i = 1; i < 6; i++) tnum = tnum * t + ndtri_c[i];
    for (int i = 1; i < 4; i++) tden = tden * t + ndtri_d[i];
    int in_tail = tail_p < (float)P_LOW;
    /* one division, for the selected formula */
    double num = in_tail ? (p < 0.5f ? tnum : -tnum) : cnum * q;
    double den = in_tail ? tden * t + 1.0 : cden * r + 1.0;
    return (float)(num / den);
}

/* Double quantile, Acklam's value (relative error below 1.2e-9: enough for float);
 * -inf / +inf at p <= 0 / p >= 1. */
static double fnn_ndtri_approx(double p)
{
    if (p <= 0) return -INFINITY;
    if (p >= 1) return INFINITY;
    double tail_p = p < 0.5 ? p : 1.0 - p;
    if (tail_p < P_LOW) {
        double t = sqrt(-2.0 * log(tail_p)), num = ndtri_c[0], den = ndtri_d[0];
        for (int i = 1; i < 6; i++) num = num * t + ndtri_c[i];
        for (int i = 1; i < 4; i++) den = den * t + ndtri_d[i];
        double x = num / (den * t + 1.0);
        return p < 0.5 ? x : -x;
    }
    double q = p - 0.5, r = q * q, num = ndtri_a[0], den = ndtri_b[0];
    for (int i = 1; i < 6; i++) num = num * r + ndtri_a[i];
    for (int i = 1; i < 5; i++) den = den * r + ndtri_b[i];
    return num * q / (den * r + 1.0);
}

/* Double quantile to full precision: Acklam's value and one Halley step on erfc. */
static double fnn_ndtri(double p)
{
    double x = fnn_ndtri_approx(p);
    if (!isfinite(x)) return x;
    double e = 0.5 * erfc(-x * 0.70710678118654752) - p;
    double u = e * 2.50662827463100050 * exp(x * x / 2); /* sqrt(2 pi) */
    return x - u / (1 + x * u / 2);
}

/* Standard normal CDF. */
static double fnn_ndtr(double x) { return 0.5 * erfc(-x * 0.70710678118654752); }

#define FNN_GENERIC "generic/init.h"
#include "instantiate.h"
