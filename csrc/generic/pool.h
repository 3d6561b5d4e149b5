/* Generic body of pool.c; see instantiate.h for T and S(). */

/* Runs `body` for each plane p of g in parallel, with the plane's input/output sizes
 * as the work. */
#define FNN_FOR_PLANES(g, p, ...)                                                       \
    FNN_PARALLEL_SPLIT((g)->planes, (g)->planes * ((g)->H * (g)->W + (g)->Ho * (g)->Wo), \
                       lo_, hi_, for (ptrdiff_t p = lo_; p < hi_; p++) { __VA_ARGS__; })

/* torch's max_pool2d at output (oh, ow): the first maximum of the window (NaN counts
 * as a maximum and the last NaN wins). A window with no input element (the binding's
 * checks exclude it) gets -inf and index -1, which backward skips. */
static inline void S(maxpool_at)(const fnn_pool_geom *g, const T *x, ptrdiff_t oh,
                                 ptrdiff_t ow, T *y, int32_t *idx)
{
    ptrdiff_t h0 = oh * g->sh - g->ph, h1 = h0 + (g->kh - 1) * g->dh + 1;
    ptrdiff_t w0 = ow * g->sw - g->pw, w1 = w0 + (g->kw - 1) * g->dw + 1;
    if (h1 > g->H) h1 = g->H;
    if (w1 > g->W) w1 = g->W;
    while (h0 < 0) h0 += g->dh;
    while (w0 < 0) w0 += g->dw;
    ptrdiff_t best_i = -1;
    T best = -INFINITY;
    for (ptrdiff_t ih = h0; ih < h1; ih += g->dh)
        for (ptrdiff_t iw = w0; iw < w1; iw += g->dw) {
            T v = x[ih * g->W + iw];
            if (best_i < 0 || v > best || isnan(v)) {
                best = v;
                best_i = ih * g->W + iw;
            }
        }
    *y = best;
    *idx = (int32_t)best_i;
}

/* One plane. Outputs whose window lies inside the input (all but a border) take the
 * taps in window order, each tap as one vectorised pass over the row, with the same
 * comparisons as maxpool_at. */
static FNN_CLONES void S(maxpool_plane)(const fnn_pool_geom *g, const T *x, T *y, int32_t *idx)
{
    ptrdiff_t oh0, oh1, ow0, ow1, W = g->W, Wo = g->Wo, sw = g->sw;
    /* windows inside the input: their first tap o s - p in [0, len - (k - 1) d) */
    fnn_out_range(g->H - (g->kh - 1) * g->dh, g->sh, g->ph, g->Ho, &oh0, &oh1);
    fnn_out_range(W - (g->kw - 1) * g->dw, sw, g->pw, Wo, &ow0, &ow1);
    for (ptrdiff_t oh = 0; oh < g->Ho; oh++) {
        T *yr = y + oh * Wo;
        int32_t *ir = idx + oh * Wo;
        int inner = oh >= oh0 && oh < oh1;
        for (ptrdiff_t ow = 0; ow < Wo; ow++) {
            if (inner && ow == ow0) ow = ow1;
            if (ow < Wo) S(maxpool_at)(g, x, oh, ow, yr + ow, ir + ow);
        }
        if (!inner || ow0 >= ow1) continue;
        for (ptrdiff_t ki = 0; ki < g->kh; ki++)
            for (ptrdiff_t kj = 0; kj < g->kw; kj++) {
                ptrdiff_t base = (oh * g->sh - g->ph + ki * g->dh) * W + kj * g->dw - g->pw;
                const T *xr = x + base;
                if (ki == 0 && kj == 0) {
#pragma omp simd
                    for (ptrdiff_t ow = ow0; ow < ow1; ow++) {
                        yr[ow] = xr[ow * sw];
                        ir[ow] = (int32_t)(base + ow * sw);
                    }
                    continue;
                }
#pragma omp simd
                for (ptrdiff_t ow = ow0; ow < ow1; ow++) {
                    T v = xr[ow * sw];
                    int take = v > yr[ow] || v != v;
                    yr[ow] = take ? v : yr[ow];
                    ir[ow] = take ? (int32_t)(base + ow * sw) : ir[ow];
                }
            }
    }
}

void S(fnn_maxpool_forward)(const fnn_pool_geom *g, const T *x, T *y, int32_t *idx)
{
    ptrdiff_t in = g->H * g->W, out = g->Ho * g->Wo;
    FNN_FOR_PLANES(g, p, S(maxpool_plane)(g, x + p * in, y + p * out, idx + p * out));
}

void S(fnn_maxpool_backward)(const fnn_pool_geom *g, const T *gy, const int32_t *idx, T *gx)
{
    ptrdiff_t in = g->H * g->W, out = g->Ho * g->Wo;
    FNN_FOR_PLANES(g, p, {
        T *gxp = gx + p * in;
        const T *gyp = gy + p * out;
        const int32_t *ip = idx + p * out;
        memset(gxp, 0, (size_t)in * sizeof(T));
        for (ptrdiff_t k = 0; k < out; k++)
            if (ip[k] >= 0) gxp[ip[k]] += gyp[k];
    });
}

/* Sum of the plane x (width W) over the window [h0, h1) x [w0, w1). */
static inline T S(window_sum)(const T *x, ptrdiff_t W, ptrdiff_t h0, ptrdiff_t h1,
                              ptrdiff_t w0, ptrdiff_t w1)
{
    T s = 0;
    for (ptrdiff_t ih = h0; ih < h1; ih++)
        for (ptrdiff_t iw = w0; iw < w1; iw++) s += x[ih * W + iw];
    return s;
}

/* The adjoint of window_sum: v added to every element of the window of gx. */
static inline void S(window_add)(T *gx, ptrdiff_t W, ptrdiff_t h0, ptrdiff_t h1,
                                 ptrdiff_t w0, ptrdiff_t w1, T v)
{
    for (ptrdiff_t ih = h0; ih < h1; ih++)
        for (ptrdiff_t iw = w0; iw < w1; iw++) gx[ih * W + iw] += v;
}

/* Window [h0, h1) x [w0, w1) of output (oh, ow) clipped to the input, and its divisor
 * (torch's avg_pool2d rule). Returns 0 for a window wholly in the padding. */
static inline int S(avg_window)(const fnn_pool_geom *g, int count_include_pad,
                                ptrdiff_t divisor, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t *h0,
                                ptrdiff_t *h1, ptrdiff_t *w0, ptrdiff_t *w1, T *scale)
{
    ptrdiff_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    ptrdiff_t he = hs + g->kh, we = ws + g->kw;
    if (he > g->H + g->ph) he = g->H + g->ph;
    if (we > g->W + g->pw) we = g->W + g->pw;
    ptrdiff_t padded = (he - hs) * (we - ws);
    if (hs < 0) hs = 0;
    if (ws < 0) ws = 0;
    if (he > g->H) he = g->H;
    if (we > g->W) we = g->W;
    *h0 = hs, *h1 = he, *w0 = ws, *w1 = we;
    if (hs >= he || ws >= we) return 0;
    ptrdiff_t d = divisor > 0 ? divisor : count_include_pad ? padded : (he - hs) * (we - ws);
    *scale = (T)1 / (T)d;
    return 1;
}

static void S(avgpool_plane)(const fnn_pool_geom *g, int cip, ptrdiff_t divisor, const T *x,
                             T *y)
{
    for (ptrdiff_t oh = 0; oh < g->Ho; oh++)
        for (ptrdiff_t ow = 0; ow < g->Wo; ow++) {
            ptrdiff_t h0, h1, w0, w1;
            T scale, s = 0;
            if (S(avg_window)(g, cip, divisor, oh, ow, &h0, &h1, &w0, &w1, &scale))
                s = S(window_sum)(x, g->W, h0, h1, w0, w1) * scale;
            y[oh * g->Wo + ow] = s;
        }
}

static void S(avgpool_grad_plane)(const fnn_pool_geom *g, int cip, ptrdiff_t divisor,
                                  const T *gy, T *gx)
{
    memset(gx, 0, (size_t)(g->H * g->W) * sizeof(T));
    for (ptrdiff_t oh = 0; oh < g->Ho; oh++)
        for (ptrdiff_t ow = 0; ow < g->Wo; ow++) {
            ptrdiff_t h0, h1, w0, w1;
            T scale;
            if (S(avg_window)(g, cip, divisor, oh, ow, &h0, &h1, &w0, &w1, &scale))
                S(window_add)(gx, g->W, h0, h1, w0, w1, gy[oh * g->Wo + ow] * scale);
        }
}

void S(fnn_avgpool_forward)(const fnn_pool_geom *g, int count_include_pad, ptrdiff_t divisor,
                            const T *x, T *y)
{
    ptrdiff_t in = g->H * g->W, out = g->Ho * g->Wo;
    FNN_FOR_PLANES(g, p,
                   S(avgpool_plane)(g, count_include_pad, divisor, x + p * in, y + p * out));
}

void S(fnn_avgpool_backward)(const fnn_pool_geom *g, int count_include_pad, ptrdiff_t divisor,
                             const T *gy, T *gx)
{
    ptrdiff_t in = g->H * g->W, out = g->Ho * g->Wo;
    FNN_FOR_PLANES(g, p,
                   S(avgpool_grad_plane)(g, count_include_pad, divisor, gy + p * out,
                                         gx + p * in));
}

static void S(adaptive_plane)(const fnn_pool_geom *g, const T *x, T *y, T *gx, const T *gy)
{
    if (gx) memset(gx, 0, (size_t)(g->H * g->W) * sizeof(T));
    for (ptrdiff_t oh = 0; oh < g->Ho; oh++) {
        ptrdiff_t h0, h1;
        fnn_adaptive_cell(oh, g->Ho, g->H, &h0, &h1);
        for (ptrdiff_t ow = 0; ow < g->Wo; ow++) {
            ptrdiff_t w0, w1;
            fnn_adaptive_cell(ow, g->Wo, g->W, &w0, &w1);
            T scale = (T)1 / (T)((h1 - h0) * (w1 - w0));
            if (gx)
                S(window_add)(gx, g->W, h0, h1, w0, w1, gy[oh * g->Wo + ow] * scale);
            else
                y[oh * g->Wo + ow] = S(window_sum)(x, g->W, h0, h1, w0, w1) * scale;
        }
    }
}

/* Global average pooling (a 1 x 1 output) of planes [p0, p1) of n values each: a
 * vectorised sum per plane, and backward its adjoint (the scaled gradient everywhere). */
static FNN_CLONES void S(global_avg_planes)(ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t n,
                                            const T *x, T *y)
{
    T scale = (T)1 / (T)n;
    for (ptrdiff_t p = p0; p < p1; p++) {
        const T *xp = x + p * n;
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t k = 0; k < n; k++) s += xp[k];
        y[p] = s * scale;
    }
}

static FNN_CLONES void S(global_avg_grad_planes)(ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t n,
                                                 const T *gy, T *gx)
{
    T scale = (T)1 / (T)n;
    for (ptrdiff_t p = p0; p < p1; p++) {
        T v = gy[p] * scale, *gp = gx + p * n;
#pragma omp simd
        for (ptrdiff_t k = 0; k < n; k++) gp[k] = v;
    }
}

void S(fnn_adaptive_avgpool_forward)(const fnn_pool_geom *g, const T *x, T *y)
{
    ptrdiff_t in = g->H * g->W, out = g->Ho * g->Wo;
    if (out == 1)
        FNN_PARALLEL_SPLIT(g->planes, g->planes * in, lo, hi,
                           S(global_avg_planes)(lo, hi, in, x, y));
    else
        FNN_FOR_PLANES(g, p, S(adaptive_plane)(g, x + p * in, y + p * out, NULL, NULL));
}

void S(fnn_adaptive_avgpool_backward)(const fnn_pool_geom *g, const T *gy, T *gx)
{
    ptrdiff_t in = g->H * g->W, out = g->Ho * g->Wo;
    if (out == 1)
        FNN_PARALLEL_SPLIT(g->planes, g->planes * in, lo, hi,
                           S(global_avg_grad_planes)(lo, hi, in, gy, gx));
    else
        FNN_FOR_PLANES(g, p, S(adaptive_plane)(g, NULL, NULL, gx + p * in, gy + p * out));
}

#undef FNN_FOR_PLANES
