/* What the machine allows, measured: the yardsticks of `fastnn bench`.
 *
 * - The CPU's peak arithmetic rate, what no kernel can beat: products are quoted as a
 *   share of it, so that "2x PyTorch" can be checked against what the machine allows
 *   (a library already at 70% of peak leaves at most 1.4x to anyone). Each thread runs
 *   independent chains of fused multiply-adds on the widest vectors the CPU has,
 *   enough chains to cover the FMA latency on every unit.
 * - The interruptions of a running thread (timer ticks, the hypervisor, other tasks):
 *   how often and for how long the CPU is taken away sets a floor under the tail
 *   latency of any short call, whatever runs in it. */
#define _POSIX_C_SOURCE 199309L
#include <time.h>
#include "fastnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

/* The accumulators end here, so that the compiler keeps the loop. */
static volatile float peak_sink;

/* 12 independent accumulators: 2 FMA units x 4-5 cycles of latency, with room. */
#define FNN_PEAK_CHAINS 12
#define FNN_PEAK_LOOP(vec, set1, fma, width)                                            \
    vec acc[FNN_PEAK_CHAINS], mul = set1(1.0000001f), add = set1(1e-7f);               \
    for (int c = 0; c < FNN_PEAK_CHAINS; c++) acc[c] = set1((float)c);                  \
    for (long it = 0; it < iters; it++)                                                 \
        for (int c = 0; c < FNN_PEAK_CHAINS; c++) acc[c] = fma(acc[c], mul, add);       \
    for (int c = 0; c < FNN_PEAK_CHAINS; c++) peak_sink += ((float *)&acc[c])[0];        \
    return (double)iters * FNN_PEAK_CHAINS * 2 * (width);

__attribute__((target("avx512f"))) static double fma_avx512(long iters)
{
    FNN_PEAK_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16)
}

__attribute__((target("avx2,fma"))) static double fma_avx2(long iters)
{
    FNN_PEAK_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8)
}

/* Floating-point operations done in `iters` rounds on the widest FMA the CPU has, or
 * -1 without FMA. */
static double fma_rounds(long iters)
{
    if (__builtin_cpu_supports("avx512f")) return fma_avx512(iters);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return fma_avx2(iters);
    return -1;
}
#else
static double fma_rounds(long iters)
{
    (void)iters;
    return -1;
}
#endif

double fnn_peak_gflops(int nthreads, double seconds)
{
#ifdef _OPENMP
    double total = 0;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : total) reduction(| : failed)
    {
        /* Calibrate to ~1/10 of the time, then time one run of the rest. */
        long iters = 1 << 16;
        double t0 = omp_get_wtime(), flops = fma_rounds(iters), t = omp_get_wtime() - t0;
        if (flops < 0) {
            failed = 1;
        } else {
            double per_iter = t / iters > 1e-12 ? t / iters : 1e-12;
            iters = (long)(seconds / per_iter) + 1;
            t0 = omp_get_wtime();
            flops = fma_rounds(iters);
            total += flops / (omp_get_wtime() - t0) * 1e-9;
        }
    }
    return failed ? -1 : total;
#else
    (void)nthreads;
    (void)seconds;
    return -1;
#endif
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void fnn_interruptions(int nthreads, double seconds, double threshold_us, double *gaps,
                       ptrdiff_t cap, ptrdiff_t *counts)
{
#pragma omp parallel for schedule(static, 1) num_threads(nthreads)
    for (int t = 0; t < nthreads; t++) {
        double *mine = gaps + t * cap;
        ptrdiff_t n = 0;
        double start = seconds_now(), prev = start, now;
        while ((now = seconds_now()) - start < seconds) {
            double gap_us = (now - prev) * 1e6;
            if (gap_us > threshold_us) {
                if (n < cap) mine[n] = gap_us;
                n++;
            }
            prev = now;
        }
        counts[t] = n;
    }
}
