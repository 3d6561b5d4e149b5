/* Single-precision exp, sigmoid, tanh, expm1 and log1p that vectorise.
 *
 * libm's expf/tanhf are opaque calls, so a loop calling them runs one element at a
 * time. These are branch-free polynomial versions (Cephes' algorithms and
 * coefficients: range reduction, then a minimax polynomial) that GCC vectorises
 * inside `#pragma omp simd` loops. Accuracy: within 3 ulp over the whole float range
 * (tests/test_kernels.py checks them against float64 libm); NaN and +-inf behave as
 * libm's. Double precision keeps libm (its callers are checks, not speed). */
#ifndef FASTNN_VMATH_H
#define FASTNN_VMATH_H

#include <math.h>
#include <stdint.h>

/* Always inlined: a call left out of line would keep the caller's loop scalar. */
#if defined(__GNUC__)
#define FNN_VINLINE static inline __attribute__((always_inline))
#else
#define FNN_VINLINE static inline
#endif

FNN_VINLINE float fnn_bits_to_float(int32_t i)
{
    union { int32_t i; float f; } u;
    u.i = i;
    return u.f;
}

FNN_VINLINE int32_t fnn_float_to_bits(float f)
{
    union { float f; int32_t i; } u;
    u.f = f;
    return u.i;
}

/* e^x for x in [-87.3, 88.7] or NaN (the caller clamps): x = n ln2 + r, |r| <= ln2 / 2,
 * e^r by a degree-6 polynomial, times 2^n (n in [-126, 128]; 2^128 overflows to inf,
 * which is e^88.7 rounded). No special cases: the common core of the functions below. */
FNN_VINLINE float fnn_expf_core(float x)
{
    /* round to nearest by the 1.5 * 2^23 trick (|t| < 2^22) */
    float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    int32_t n = (int32_t)fn;
    float r = x - fn * 0.693359375f - fn * -2.12194440e-4f;
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * z + r + 1.0f;
    /* shifted unsigned: for NaN x, n is garbage (y is NaN anyway) and a signed shift
     * of a negative value would be undefined behaviour */
    return y * fnn_bits_to_float((int32_t)((uint32_t)(n + 127) << 23));
}

/* e^x over the whole float range. */
FNN_VINLINE float fnn_expf(float x)
{
    const float hi = 88.7228393f, lo = -87.3365479f;
    /* Two-way selects and arithmetic only: GCC if-converts and vectorises those. */
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float y = fnn_expf_core(xc);
    y = x > hi ? (float)INFINITY : y;
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

/* 1 / (1 + e^-x): the clamped core suffices (e^-x rounds to 0 or to inf beyond it,
 * and 1 / (1 + inf) = 0); a NaN passes the selects and propagates. */
FNN_VINLINE float fnn_sigmoidf(float x)
{
    float m = -x;
    m = m > 88.7228393f ? 88.7228393f : m;
    m = m < -87.3365479f ? -87.3365479f : m;
    return 1.0f / (1.0f + fnn_expf_core(m));
}

/* tanh: an odd polynomial for |x| < 0.625, 1 - 2 / (e^2|x| + 1) beyond (with the sign;
 * |x| clamped to 20, where tanh is 1 in float). A NaN propagates through both sides. */
FNN_VINLINE float fnn_tanhf(float x)
{
    float z = x < 0 ? -x : x;
    float s = fnn_expf_core(2.0f * (z > 20.0f ? 20.0f : z));
    float big = 1.0f - 2.0f / (s + 1.0f);
    big = x < 0 ? -big : big;
    float x2 = x * x;
    float p = -5.70498872745e-3f;
    p = p * x2 + 2.06390887954e-2f;
    p = p * x2 - 5.37397155531e-2f;
    p = p * x2 + 1.33314422036e-1f;
    p = p * x2 - 3.33332819422e-1f;
    float small = p * x2 * x + x;
    return z < 0.625f ? small : big;
}

/* tanh(k x) = num / den for x clamped to [-7.9 / k, 7.9 / k], k a constant power of two
 * (1, or 1/2 for the sigmoid): with c = k x, num = c P(c^2) and den = Q(c^2), a
 * rational fit of degree 4 over 4 in c^2 (minimax relative error 2e-8 on [0, 9]; within
 * 4e-7 of tanh once rounded to float). P and Q are divided by Q's leading coefficient,
 * so that Q's first Horner step is an add, and by k^8, so that k folds into the
 * coefficients (exactly: powers of two): 7 multiply-adds, 1 add and 2 multiplies (the
 * multiply-adds are what the recurrent kernels' gates cost: they share the FMA units
 * with the products). A NaN passes the clamps and propagates.
 * The clamp is at 7.9, short of 9 where tanh rounds to 1: beyond 8.03 the rounded
 * fraction overshoots 1 by an ulp or two (beyond 7.92 without FMAs), and a GRU's state,
 * a mix of tanh values, drifted up to 4 ulps above 1. Up to 7.9 it stays within
 * [-1, 1] with or without FMAs (the sigmoid within [0, 1]); past it tanh is within
 * 2.8e-7 of +-1, the sigmoid within 1.4e-7 of 0 or 1. */
FNN_VINLINE void fnn_tanhf_fraction(float x, float k, float *num, float *den)
{
    const float i1 = 1.0f / k, i2 = i1 * i1, i4 = i2 * i2, lim = 7.9f * i1;
    float c = x > lim ? lim : x;
    c = c < -lim ? -lim : c;
    float s = c * c;
    float p = 1.717299595e-02f / i1 * s + 2.650151634e+01f * i1;
    p = p * s + 4.495020996e+03f * (i2 * i1);
    p = p * s + 1.720681875e+05f * (i4 * i1);
    p = p * s + 1.285911625e+06f * (i4 * i2 * i1);
    float q = s + 4.225041809e+02f * i2;
    q = q * s + 3.327552344e+04f * i4;
    q = q * s + 6.007051875e+05f * (i4 * i2);
    q = q * s + 1.285911625e+06f * (i4 * i4);
    *num = c * p;
    *den = q;
}

/* tanh(x) by the fraction above: within 4e-7 of the exact value in 13 vector
 * instructions, where fnn_tanhf takes about 35 for its last-ulp accuracy. */
FNN_VINLINE float fnn_tanhf_rational(float x)
{
    float num, den;
    fnn_tanhf_fraction(x, 1.0f, &num, &den);
    return num / den;
}

/* sigmoid(x) = (1 + tanh(x / 2)) / 2 = (den + num) / (2 den) with the fraction of
 * tanh(x / 2): within 3e-7 (num + den suffers no cancellation worse than 1 - tanh's),
 * 15 instructions (fnn_sigmoidf: about 21). */
FNN_VINLINE float fnn_sigmoidf_rational(float x)
{
    float num, den;
    fnn_tanhf_fraction(x, 0.5f, &num, &den);
    return (den + num) / (den + den);
}

/* Double precision: libm's exp (its callers are checks, not speed). */
FNN_VINLINE double fnn_sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* e^x - 1: Taylor series to x^9/9! for |x| < 0.5, e^x - 1 beyond. */
FNN_VINLINE float fnn_expm1f(float x)
{
    float z = x < 0 ? -x : x;
    float p = 1.0f / 362880;
    p = p * x + 1.0f / 40320;
    p = p * x + 1.0f / 5040;
    p = p * x + 1.0f / 720;
    p = p * x + 1.0f / 120;
    p = p * x + 1.0f / 24;
    p = p * x + 1.0f / 6;
    p = p * x + 0.5f;
    float small = p * x * x + x;
    float big = fnn_expf(x) - 1.0f;
    return z < 0.5f ? small : big;
}

/* ln x for x > 0 (normal numbers): x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m by a
 * polynomial in m - 1. ln(+inf) = +inf, ln(NaN) = NaN. */
FNN_VINLINE float fnn_logf(float x)
{
    int32_t bits = fnn_float_to_bits(x);
    int32_t e = ((bits >> 23) & 0xff) - 126;
    float m = fnn_bits_to_float((bits & 0x007fffff) | 0x3f000000); /* in [0.5, 1) */
    int small = m < 0.707106781186547524f;
    e -= small;
    m = small ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float p = 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    float fe = (float)e;
    float y = p * m * z + fe * -2.12194440e-4f - 0.5f * z;
    y = m + y + fe * 0.693359375f;
    y = x == (float)INFINITY ? x : y;
    return x != x ? x : y;
}

/* ln(1 + x) for x >= 0: ln(u) * x / (u - 1) with u = 1 + x, which cancels the rounding
 * of u (Goldberg's trick); x itself when u rounds to 1. */
FNN_VINLINE float fnn_log1pf(float x)
{
    float u = 1.0f + x;
    float d = u - 1.0f;
    float r = fnn_logf(u) * (x / (d == 0.0f ? 1.0f : d));
    r = d == 0.0f ? x : r;
    return u == (float)INFINITY ? u : r;
}

#endif
