/* Generic body of conv.c; see instantiate.h for T and S(). */
#include "act_grad.h"

/* The rows and columns of the output that tap (ki, kj) reads from inside the input:
 * [oh0, oh1) x [ow0, ow1), and the input offset of output (0, 0) for that tap. */
struct S(tap) {
    ptrdiff_t oh0, oh1, ow0, ow1, off;
};

static inline struct S(tap) S(tap_range)(const fnn_conv_geom *g, ptrdiff_t ki, ptrdiff_t kj)
{
    struct S(tap) t;
    fnn_out_range(g->H, g->sh, g->ph - ki * g->dh, g->Ho, &t.oh0, &t.oh1);
    fnn_out_range(g->W, g->sw, g->pw - kj * g->dw, g->Wo, &t.ow0, &t.ow1);
    t.off = (ki * g->dh - g->ph) * g->W + kj * g->dw - g->pw;
    return t;
}

/* One row of the columns for `cnt` samples: dst (cnt, Ho, Wo) gets, for each output,
 * the input plane xc (sample stride `plane`) at the tap's position, 0 in the padding. */
static FNN_CLONES void S(im2col_row)(const fnn_conv_geom *g, struct S(tap) t, const T *xc,
                                     ptrdiff_t plane, ptrdiff_t cnt, T *dst)
{
    ptrdiff_t Ho = g->Ho, Wo = g->Wo, sh = g->sh, sw = g->sw, W = g->W;
    ptrdiff_t n = t.ow1 - t.ow0;
    for (ptrdiff_t j = 0; j < cnt; j++, xc += plane, dst += Ho * Wo) {
        memset(dst, 0, (size_t)(t.oh0 * Wo) * sizeof(T));
        for (ptrdiff_t oh = t.oh0; oh < t.oh1; oh++) {
            const T *xr = xc + oh * sh * W + t.ow0 * sw + t.off;
            T *d = dst + oh * Wo;
            for (ptrdiff_t ow = 0; ow < t.ow0; ow++) d[ow] = 0;
            if (sw == 1) {
#pragma omp simd
                for (ptrdiff_t o = 0; o < n; o++) d[t.ow0 + o] = xr[o];
            } else {
#pragma omp simd
                for (ptrdiff_t o = 0; o < n; o++) d[t.ow0 + o] = xr[o * sw];
            }
            for (ptrdiff_t ow = t.ow1; ow < Wo; ow++) d[ow] = 0;
        }
        memset(dst + t.oh1 * Wo, 0, (size_t)((Ho - t.oh1) * Wo) * sizeof(T));
    }
}

/* The adjoint of im2col_row for one sample: adds src (Ho, Wo) into the plane xc. */
static FNN_CLONES void S(col2im_row)(const fnn_conv_geom *g, struct S(tap) t, const T *src,
                                     T *xc)
{
    ptrdiff_t Wo = g->Wo, sw = g->sw, n = t.ow1 - t.ow0;
    for (ptrdiff_t oh = t.oh0; oh < t.oh1; oh++) {
        T *xr = xc + oh * g->sh * g->W + t.ow0 * sw + t.off;
        const T *s = src + oh * Wo + t.ow0;
#pragma omp simd
        for (ptrdiff_t o = 0; o < n; o++) xr[o * sw] += s[o];
    }
}

/* col (C kh kw, cnt Ho Wo) of samples x[0 .. cnt): one row (channel, tap) per task. */
static void S(im2col)(const fnn_conv_geom *g, const T *x, ptrdiff_t cnt, T *col)
{
    ptrdiff_t kk = g->kh * g->kw, hw = g->Ho * g->Wo, rows = g->C * kk;
    ptrdiff_t plane = g->H * g->W, in_sample = g->C * plane;
    FNN_PARALLEL_SPLIT(rows, rows * cnt * hw, lo, hi,
                       for (ptrdiff_t r = lo; r < hi; r++) {
                           ptrdiff_t c = r / kk, k = r % kk;
                           S(im2col_row)(g, S(tap_range)(g, k / g->kw, k % g->kw),
                                         x + c * plane, in_sample, cnt, col + r * cnt * hw);
                       });
}

/* gx[0 .. cnt) = col2im(col): each (sample, channel) plane by one thread, taps in order. */
static void S(col2im)(const fnn_conv_geom *g, const T *col, ptrdiff_t cnt, T *gx)
{
    ptrdiff_t kk = g->kh * g->kw, hw = g->Ho * g->Wo, plane = g->H * g->W;
    FNN_PARALLEL_SPLIT(cnt * g->C, cnt * g->C * (plane + kk * hw), lo, hi,
                       for (ptrdiff_t t = lo; t < hi; t++) {
                           ptrdiff_t j = t / g->C, c = t % g->C;
                           T *xc = gx + t * plane;
                           memset(xc, 0, (size_t)plane * sizeof(T));
                           for (ptrdiff_t k = 0; k < kk; k++)
                               S(col2im_row)(g, S(tap_range)(g, k / g->kw, k % g->kw),
                                             col + ((c * kk + k) * cnt + j) * hw, xc);
                       });
}

/* Per activation: the forward epilogue over n values of one (sample, channel),
 * y = F(src + bias) (z = src + bias when z is kept), and the backward prologue,
 * dst = gy D(z, y) returning the sum of dst. */
#define FNN_CONV_WORKERS(CODE, name, F, D, NEEDS_INPUT)                                    \
    static FNN_CLONES void S(conv_fwd_##name)(T a, T b, ptrdiff_t n, const T *src, T bias, \
                                              T *z, T *y)                                  \
    {                                                                                      \
        (void)a;                                                                           \
        (void)b;                                                                           \
        if (z) {                                                                           \
            _Pragma("omp simd") for (ptrdiff_t k = 0; k < n; k++)                          \
            {                                                                              \
                T v = src[k] + bias;                                                       \
                z[k] = v;                                                                  \
                y[k] = F(v, a, b);                                                         \
            }                                                                              \
        } else {                                                                           \
            _Pragma("omp simd") for (ptrdiff_t k = 0; k < n; k++)                          \
            {                                                                              \
                T v = src[k] + bias;                                                       \
                y[k] = F(v, a, b);                                                         \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    static FNN_CLONES double S(conv_bwd_##name)(T a, T b, ptrdiff_t n, const T *z,         \
                                                const T *y, const T *gy, T *dst)           \
    {                                                                                      \
        (void)a;                                                                           \
        (void)b;                                                                           \
        (void)z;                                                                           \
        (void)y;                                                                           \
        double s = 0;                                                                      \
        _Pragma("omp simd reduction(+ : s)") for (ptrdiff_t k = 0; k < n; k++)             \
        {                                                                                  \
            T v = gy[k] * D(z[k], y[k], a, b);                                             \
            dst[k] = v;                                                                    \
            s += v;                                                                        \
        }                                                                                  \
        return s;                                                                          \
    }

FNN_FOR_EACH_ACT(FNN_CONV_WORKERS)
#undef FNN_CONV_WORKERS

/* Dispatch on the activation code to its workers. */
static inline void S(conv_fwd)(int act, T a, T b, ptrdiff_t n, const T *src, T bias, T *z, T *y)
{
    switch (act) {
#define FNN_CASE(CODE, name, F, D, NI)                   \
    case CODE:                                           \
        S(conv_fwd_##name)(a, b, n, src, bias, z, y);    \
        break;
        FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
    }
}

static inline double S(conv_bwd)(int act, T a, T b, ptrdiff_t n, const T *z, const T *y,
                                 const T *gy, T *dst)
{
    switch (act) {
#define FNN_CASE(CODE, name, F, D, NI) \
    case CODE:                         \
        return S(conv_bwd_##name)(a, b, n, z, y, gy, dst);
        FNN_FOR_EACH_ACT(FNN_CASE)
#undef FNN_CASE
    }
    return 0;
}

/* out (K, cnt hw) -> y (cnt, K, hw) with bias and activation. */
static void S(conv_epilogue)(const fnn_conv_geom *g, int act, T a, T b, const T *bias,
                             const T *out, ptrdiff_t cnt, T *z, T *y)
{
    ptrdiff_t K = g->K, hw = g->Ho * g->Wo, cols = cnt * hw;
    FNN_PARALLEL_SPLIT(cnt * K, cnt * K * hw, lo, hi,
                       for (ptrdiff_t t = lo; t < hi; t++) {
                           ptrdiff_t j = t / K, c = t % K;
                           S(conv_fwd)(act, a, b, hw, out + c * cols + j * hw,
                                       bias ? bias[c] : (T)0, z ? z + t * hw : NULL,
                                       y + t * hw);
                       });
}

/* gz (K, cnt hw) = gy (cnt, K, hw) act'(z, y); bsum[c] += the channel's sum. One
 * channel per thread at a time, samples in order: the sums do not depend on threads. */
static void S(conv_prologue)(const fnn_conv_geom *g, int act, T a, T b, const T *z,
                             const T *y, const T *gy, ptrdiff_t cnt, T *gz, double *bsum)
{
    ptrdiff_t K = g->K, hw = g->Ho * g->Wo, cols = cnt * hw;
    FNN_PARALLEL_SPLIT(K, cnt * K * hw, lo, hi,
                       for (ptrdiff_t c = lo; c < hi; c++) {
                           double s = 0;
                           for (ptrdiff_t j = 0; j < cnt; j++) {
                               ptrdiff_t off = (j * K + c) * hw;
                               s += S(conv_bwd)(act, a, b, hw, z ? z + off : NULL,
                                                y ? y + off : NULL, gy + off,
                                                gz + c * cols + j * hw);
                           }
                           if (bsum) bsum[c] += s;
                       });
}

void S(fnn_conv_forward)(S(fnn_blas_gemm) blas, const fnn_conv_geom *g, const T *x,
                         const T *w, const T *bias, int act, T alpha, T beta, T *z, T *y,
                         T *scratch)
{
    ptrdiff_t nb = fnn_conv_chunk(g), hw = g->Ho * g->Wo;
    ptrdiff_t Kg = g->K / g->groups, ckk = g->C / g->groups * g->kh * g->kw;
    ptrdiff_t in_sample = g->C * g->H * g->W, out_sample = g->K * hw;
    T *col = scratch, *out = scratch + g->C * g->kh * g->kw * nb * hw;
    for (ptrdiff_t n0 = 0; n0 < g->N; n0 += nb) {
        ptrdiff_t cnt = g->N - n0 < nb ? g->N - n0 : nb, cols = cnt * hw;
        S(im2col)(g, x + n0 * in_sample, cnt, col);
        for (ptrdiff_t q = 0; q < g->groups; q++)
            S(fnn_gemm)(blas, 0, 0, Kg, cols, ckk, 1.0, w + q * Kg * ckk, ckk,
                        col + q * ckk * cols, cols, 0.0, out + q * Kg * cols, cols);
        S(conv_epilogue)(g, act, alpha, beta, bias, out, cnt, z ? z + n0 * out_sample : NULL,
                         y + n0 * out_sample);
    }
}

void S(fnn_conv_backward)(S(fnn_blas_gemm) blas, const fnn_conv_geom *g, const T *x,
                          const T *w, int act, T alpha, T beta, const T *z, const T *y,
                          const T *gy, T *gw, T *gbias, T *gx, T *scratch, double *bsum)
{
    ptrdiff_t nb = fnn_conv_chunk(g), hw = g->Ho * g->Wo;
    ptrdiff_t Kg = g->K / g->groups, ckk = g->C / g->groups * g->kh * g->kw;
    ptrdiff_t in_sample = g->C * g->H * g->W, out_sample = g->K * hw;
    T *col = scratch, *gz = scratch + g->C * g->kh * g->kw * nb * hw;
    if (gbias)
        for (ptrdiff_t c = 0; c < g->K; c++) bsum[c] = 0;
    for (ptrdiff_t n0 = 0; n0 < g->N; n0 += nb) {
        ptrdiff_t cnt = g->N - n0 < nb ? g->N - n0 : nb, cols = cnt * hw, o = n0 * out_sample;
        S(conv_prologue)(g, act, alpha, beta, z ? z + o : NULL, y ? y + o : NULL, gy + o, cnt,
                         gz, gbias ? bsum : NULL);
        if (gw) {
            S(im2col)(g, x + n0 * in_sample, cnt, col);
            for (ptrdiff_t q = 0; q < g->groups; q++)
                S(fnn_gemm)(blas, 0, 1, Kg, ckk, cols, 1.0, gz + q * Kg * cols, cols,
                            col + q * ckk * cols, cols, 1.0, gw + q * Kg * ckk, ckk);
        }
        if (gx) {
            for (ptrdiff_t q = 0; q < g->groups; q++)
                S(fnn_gemm)(blas, 1, 0, ckk, cols, Kg, 1.0, w + q * Kg * ckk, ckk,
                            gz + q * Kg * cols, cols, 0.0, col + q * ckk * cols, cols);
            S(col2im)(g, col, cnt, gx + n0 * in_sample);
        }
    }
    if (gbias)
        for (ptrdiff_t c = 0; c < g->K; c++) gbias[c] += (T)bsum[c];
}
