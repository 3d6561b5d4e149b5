/* Portable wheels, fast loops: FNN_CLONES compiles a function for the baseline x86-64
 * and for x86-64-v3 (AVX2 + FMA); the loader picks the best one once (GNU ifunc). Put
 * it on the per-chunk worker functions, not on functions that open OpenMP regions
 * (the outlined region body would only get the baseline version). A FASTNN_NATIVE
 * build compiles everything with -march=native instead. */
#ifndef FASTNN_SIMD_H
#define FASTNN_SIMD_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(FASTNN_NATIVE)
#define FNN_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
/* Also an AVX-512 clone, for loops bound by instruction count (long chains of
 * polynomial math per element, such as the recurrent gates: 1.5x on AVX-512 CPUs). */
#define FNN_CLONES_AVX512 \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FNN_CLONES
#define FNN_CLONES_AVX512
#endif

/* Whether code built with FNN_CLONES_AVX512 runs its AVX-512 version (32 vector
 * registers: room for register tiles that would spill on AVX2's 16). */
static inline int fnn_avx512_runs(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(FASTNN_NATIVE) /* the builds with target clones */
    return __builtin_cpu_supports("x86-64-v4");
#elif defined(__AVX512F__)
    return 1;
#else
    return 0;
#endif
}

#endif
