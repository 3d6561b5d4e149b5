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

/* One row of the columns of one sample: dst (Ho, Wo) gets the input plane xc at the
 * tap's position, 0 in the padding; dst[hw .. ld) is zeroed (the tiles read whole
 * vectors and the weight-gradient dot products sum over the padded width). */
static FNN_CLONES void S(im2col_row)(const fnn_conv_geom *g, struct S(tap) t, const T *xc,
                                     ptrdiff_t ld, T *dst)
{
    ptrdiff_t Ho = g->Ho, Wo = g->Wo, sh = g->sh, sw = g->sw, W = g->W;
    ptrdiff_t n = t.ow1 - t.ow0;
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
    memset(dst + t.oh1 * Wo, 0, (size_t)(ld - t.oh1 * Wo) * sizeof(T));
}

/* The adjoint of im2col_row: adds src (Ho, Wo) into the plane xc. */
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

/* col (cnt, C kh kw, ld) of samples x[0 .. cnt): one row (sample, channel, tap) per task. */
static void S(im2col)(const fnn_conv_geom *g, const T *x, ptrdiff_t cnt, ptrdiff_t ld, T *col)
{
    ptrdiff_t kk = g->kh * g->kw, rows = g->C * kk, plane = g->H * g->W;
    FNN_PARALLEL_SPLIT(cnt * rows, cnt * rows * ld, lo, hi,
                       for (ptrdiff_t r = lo; r < hi; r++) {
                           ptrdiff_t j = r / rows, c = r % rows / kk, k = r % kk;
                           S(im2col_row)(g, S(tap_range)(g, k / g->kw, k % g->kw),
                                         x + (j * g->C + c) * plane, ld, col + r * ld);
                       });
}

/* gx[0 .. cnt) = col2im(col (cnt, C kh kw, ld)): each (sample, channel) plane by one
 * thread, taps in order. */
static void S(col2im)(const fnn_conv_geom *g, const T *col, ptrdiff_t cnt, ptrdiff_t ld, T *gx)
{
    ptrdiff_t kk = g->kh * g->kw, plane = g->H * g->W;
    FNN_PARALLEL_SPLIT(cnt * g->C, cnt * g->C * (plane + kk * ld), lo, hi,
                       for (ptrdiff_t t = lo; t < hi; t++) {
                           T *xc = gx + t * plane;
                           memset(xc, 0, (size_t)plane * sizeof(T));
                           for (ptrdiff_t k = 0; k < kk; k++)
                               S(col2im_row)(g, S(tap_range)(g, k / g->kw, k % g->kw),
                                             col + (t * kk + k) * ld, xc);
                       });
}

/* ---- Register tiles: the products of the convolution ----
 * BLAS packs its operands on every call; for the short, wide products of a
 * convolution (few output channels, one sample's columns) the packing costs as much as
 * the arithmetic. These tiles read the columns as laid out (per sample, rows padded to
 * whole vectors) and keep a block of results in registers: up to 4 rows by 3 vectors. */
typedef T S(vec) __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));
#define FNN_VL ((ptrdiff_t)(32 / sizeof(T)))

/* c[i ldc + 0 .. NV VL) = sum_p a[i lda + p] b[p ldb + 0 .. NV VL), i < MB. */
#define FNN_GEMM_TILE(MB, NV)                                                                 \
    static inline __attribute__((always_inline)) void S(gemm_tile_##MB##_##NV)(              \
        ptrdiff_t P, const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc) \
    {                                                                                         \
        S(vec) acc[MB][NV];                                                                   \
        for (int i = 0; i < MB; i++)                                                          \
            for (int v = 0; v < NV; v++) acc[i][v] = (S(vec)){0};                             \
        for (ptrdiff_t p = 0; p < P; p++) {                                                   \
            S(vec) bv[NV];                                                                    \
            for (int v = 0; v < NV; v++) bv[v] = *(const S(vec) *)(b + p * ldb + v * FNN_VL); \
            for (int i = 0; i < MB; i++) {                                                    \
                T av = a[i * lda + p];                                                        \
                for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];                         \
            }                                                                                 \
        }                                                                                     \
        for (int i = 0; i < MB; i++)                                                          \
            for (int v = 0; v < NV; v++) *(S(vec) *)(c + i * ldc + v * FNN_VL) = acc[i][v];   \
    }

/* g[i ldg + q] += sum over samples s < cnt, columns j < n (a multiple of FNN_VL) of
 * a[s sa + i lda + j] b[s sb + q ldb + j], i < MB, q < QB: lane sums in a fixed order. */
#define FNN_DOT_TILE(MB, QB)                                                                  \
    static inline __attribute__((always_inline)) void S(dot_tile_##MB##_##QB)(               \
        ptrdiff_t cnt, ptrdiff_t n, const T *a, ptrdiff_t lda, ptrdiff_t sa, const T *b,     \
        ptrdiff_t ldb, ptrdiff_t sb, T *g, ptrdiff_t ldg)                                     \
    {                                                                                         \
        S(vec) acc[MB][QB];                                                                   \
        for (int i = 0; i < MB; i++)                                                          \
            for (int q = 0; q < QB; q++) acc[i][q] = (S(vec)){0};                             \
        for (ptrdiff_t s = 0; s < cnt; s++)                                                   \
            for (ptrdiff_t j = 0; j < n; j += FNN_VL) {                                       \
                S(vec) av[MB], bv[QB];                                                        \
                for (int i = 0; i < MB; i++) av[i] = *(const S(vec) *)(a + s * sa + i * lda + j); \
                for (int q = 0; q < QB; q++) bv[q] = *(const S(vec) *)(b + s * sb + q * ldb + j); \
                for (int i = 0; i < MB; i++)                                                  \
                    for (int q = 0; q < QB; q++) acc[i][q] += av[i] * bv[q];                  \
            }                                                                                 \
        for (int i = 0; i < MB; i++)                                                          \
            for (int q = 0; q < QB; q++) {                                                    \
                T sum = 0;                                                                    \
                for (int l = 0; l < FNN_VL; l++) sum += acc[i][q][l];                         \
                g[i * ldg + q] += sum;                                                        \
            }                                                                                 \
    }

#define FNN_TILES(X) X(1, 1) X(1, 2) X(1, 3) X(2, 1) X(2, 2) X(2, 3) X(3, 1) X(3, 2) X(3, 3) \
    X(4, 1) X(4, 2) X(4, 3)
FNN_TILES(FNN_GEMM_TILE)
FNN_TILES(FNN_DOT_TILE)
#undef FNN_GEMM_TILE
#undef FNN_DOT_TILE

/* c (m, n) = a (m, P) b (P, n) for n <= ldb, b's rows padded to whole vectors: column
 * tiles of 3 vectors outside, row blocks of 4 inside, so a tile of b stays in L1 while
 * it meets every row of a. The last partial tile goes through a buffer so that c gets
 * exactly n columns. */
static FNN_CLONES void S(tiled_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t P, const T *a,
                                     ptrdiff_t lda, const T *b, ptrdiff_t ldb, T *c,
                                     ptrdiff_t ldc)
{
    T buf[4 * 3 * FNN_VL];
    for (ptrdiff_t j = 0; j < n; j += 3 * FNN_VL) {
        ptrdiff_t w = n - j < 3 * FNN_VL ? n - j : 3 * FNN_VL, nv = (w + FNN_VL - 1) / FNN_VL;
        for (ptrdiff_t i = 0; i < m; i += 4) {
            ptrdiff_t mb = m - i < 4 ? m - i : 4;
            int whole = w == nv * FNN_VL;
            T *dst = whole ? c + i * ldc + j : buf;
            ptrdiff_t ldd = whole ? ldc : 3 * FNN_VL;
            switch (mb * 4 + nv) {
#define FNN_CASE(MB, NV)                                                               \
    case MB * 4 + NV:                                                                  \
        S(gemm_tile_##MB##_##NV)(P, a + i * lda, lda, b + j, ldb, dst, ldd);           \
        break;
                FNN_TILES(FNN_CASE)
#undef FNN_CASE
            }
            if (!whole)
                for (ptrdiff_t r = 0; r < mb; r++)
                    memcpy(c + (i + r) * ldc + j, buf + r * ldd, (size_t)w * sizeof(T));
        }
    }
}

/* The rows [i0, i1) and columns [q0, q1) of g (m, ldg) += sum over cnt samples of
 * a_s (m, n) b_s (., n)^T; a block of 4 x 3 results per tile. */
static FNN_CLONES void S(tiled_dot)(ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t q0, ptrdiff_t q1,
                                    ptrdiff_t cnt, ptrdiff_t n, const T *a, ptrdiff_t lda,
                                    ptrdiff_t sa, const T *b, ptrdiff_t ldb, ptrdiff_t sb,
                                    T *g, ptrdiff_t ldg)
{
    for (ptrdiff_t q = q0; q < q1; q += 3) {
        ptrdiff_t qb = q1 - q < 3 ? q1 - q : 3;
        for (ptrdiff_t i = i0; i < i1; i += 4) {
            ptrdiff_t mb = i1 - i < 4 ? i1 - i : 4;
            switch (mb * 4 + qb) {
#define FNN_CASE(MB, QB)                                                                   \
    case MB * 4 + QB:                                                                      \
        S(dot_tile_##MB##_##QB)(cnt, n, a + i * lda, lda, sa, b + q * ldb, ldb, sb,        \
                                g + i * ldg + q, ldg);                                     \
        break;
                FNN_TILES(FNN_CASE)
#undef FNN_CASE
            }
        }
    }
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

/* One forward task: sample j of the chunk, group q, output columns [j0, j0 + w) of
 * its planes: y = act(w_q col + bias) written straight into the NCHW output, the
 * epilogue running over the task's rows while they are in cache. */
static FNN_CLONES void S(conv_forward_task)(const fnn_conv_geom *g, int act, T a, T b,
                                            const T *w, const T *bias, const T *col,
                                            ptrdiff_t ld, ptrdiff_t q, ptrdiff_t j0,
                                            ptrdiff_t cols, T *z, T *y)
{
    ptrdiff_t Kg = g->K / g->groups, ckk = g->C / g->groups * g->kh * g->kw;
    ptrdiff_t hw = g->Ho * g->Wo, o = q * Kg * hw + j0;
    S(tiled_gemm)(Kg, cols, ckk, w + q * Kg * ckk, ckk, col + q * ckk * ld + j0, ld, y + o,
                  hw);
    if (act == FNN_ACT_IDENTITY && !bias && !z) return;
    for (ptrdiff_t r = 0; r < Kg; r++)
        S(conv_fwd)(act, a, b, cols, y + o + r * hw, bias ? bias[q * Kg + r] : (T)0,
                    z ? z + o + r * hw : NULL, y + o + r * hw);
}

/* gz (cnt, K, ld) = gy act'(z, y), the padding columns 0; bsum[c] += the channel's
 * sum. One channel per thread at a time, samples in order: the sums do not depend on
 * the thread count. */
static void S(conv_prologue)(const fnn_conv_geom *g, int act, T a, T b, const T *z,
                             const T *y, const T *gy, ptrdiff_t cnt, ptrdiff_t ld, T *gz,
                             double *bsum)
{
    ptrdiff_t K = g->K, hw = g->Ho * g->Wo;
    FNN_PARALLEL_SPLIT(K, cnt * K * hw, lo, hi,
                       for (ptrdiff_t c = lo; c < hi; c++) {
                           double s = 0;
                           for (ptrdiff_t j = 0; j < cnt; j++) {
                               ptrdiff_t off = (j * K + c) * hw;
                               T *dst = gz + (j * K + c) * ld;
                               s += S(conv_bwd)(act, a, b, hw, z ? z + off : NULL,
                                                y ? y + off : NULL, gy + off, dst);
                               for (ptrdiff_t k = hw; k < ld; k++) dst[k] = 0;
                           }
                           if (bsum) bsum[c] += s;
                       });
}

/* Output columns per task of the column-tiled products. */
#define FNN_CONV_TASK_COLS (12 * FNN_VL)

void S(fnn_conv_forward)(const fnn_conv_geom *g, const T *x, const T *w, const T *bias,
                         int act, T alpha, T beta, T *z, T *y, T *scratch)
{
    ptrdiff_t nb = fnn_conv_chunk(g), hw = g->Ho * g->Wo, ld = fnn_conv_ld(g);
    ptrdiff_t in_sample = g->C * g->H * g->W, out_sample = g->K * hw;
    ptrdiff_t rows = g->C * g->kh * g->kw, G = g->groups;
    ptrdiff_t blocks = (hw + FNN_CONV_TASK_COLS - 1) / FNN_CONV_TASK_COLS;
    T *col = scratch;
    for (ptrdiff_t n0 = 0; n0 < g->N; n0 += nb) {
        ptrdiff_t cnt = g->N - n0 < nb ? g->N - n0 : nb;
        S(im2col)(g, x + n0 * in_sample, cnt, ld, col);
        FNN_PARALLEL_SPLIT(cnt * G * blocks, cnt * out_sample * rows / G, lo, hi,
                           for (ptrdiff_t t = lo; t < hi; t++) {
                               ptrdiff_t j = t / (G * blocks), q = t / blocks % G;
                               ptrdiff_t j0 = t % blocks * FNN_CONV_TASK_COLS;
                               ptrdiff_t o = (n0 + j) * out_sample;
                               S(conv_forward_task)(
                                   g, act, alpha, beta, w, bias, col + j * rows * ld, ld, q,
                                   j0, hw - j0 < FNN_CONV_TASK_COLS ? hw - j0 : FNN_CONV_TASK_COLS,
                                   z ? z + o : NULL, y + o);
                           });
    }
}

void S(fnn_conv_backward)(const fnn_conv_geom *g, const T *x, const T *w, int act, T alpha,
                          T beta, const T *z, const T *y, const T *gy, T *gw, T *gbias, T *gx,
                          T *scratch, double *bsum)
{
    ptrdiff_t nb = fnn_conv_chunk(g), hw = g->Ho * g->Wo, ld = fnn_conv_ld(g);
    ptrdiff_t G = g->groups, Kg = g->K / G, ckk = g->C / G * g->kh * g->kw;
    ptrdiff_t rows = G * ckk, in_sample = g->C * g->H * g->W, out_sample = g->K * hw;
    ptrdiff_t blocks = (hw + FNN_CONV_TASK_COLS - 1) / FNN_CONV_TASK_COLS;
    ptrdiff_t rblocks = (Kg + 3) / 4, cblocks = (ckk + 11) / 12;
    T *col = scratch, *gz = col + nb * rows * ld, *wt = gz + nb * g->K * ld;
    if (gx) /* wt: each group's (ckk, Kg) transposed weights, the a of dL/dcol = w^T gz */
        for (ptrdiff_t q = 0; q < G; q++)
            for (ptrdiff_t k = 0; k < Kg; k++)
                for (ptrdiff_t p = 0; p < ckk; p++)
                    wt[(q * ckk + p) * Kg + k] = w[(q * Kg + k) * ckk + p];
    if (gbias)
        for (ptrdiff_t c = 0; c < g->K; c++) bsum[c] = 0;
    for (ptrdiff_t n0 = 0; n0 < g->N; n0 += nb) {
        ptrdiff_t cnt = g->N - n0 < nb ? g->N - n0 : nb, o = n0 * out_sample;
        S(conv_prologue)(g, act, alpha, beta, z ? z + o : NULL, y ? y + o : NULL, gy + o, cnt,
                         ld, gz, gbias ? bsum : NULL);
        if (gw) { /* dL/dw += gz col^T: each 4 x 12 block of outputs by one thread */
            S(im2col)(g, x + n0 * in_sample, cnt, ld, col);
            FNN_PARALLEL_SPLIT(G * rblocks * cblocks, cnt * out_sample * rows / G, lo, hi,
                               for (ptrdiff_t t = lo; t < hi; t++) {
                                   ptrdiff_t q = t / (rblocks * cblocks);
                                   ptrdiff_t i0 = t / cblocks % rblocks * 4;
                                   ptrdiff_t p0 = t % cblocks * 12;
                                   S(tiled_dot)(i0, i0 + 4 < Kg ? i0 + 4 : Kg, p0,
                                                p0 + 12 < ckk ? p0 + 12 : ckk, cnt, ld,
                                                gz + q * Kg * ld, ld, g->K * ld,
                                                col + q * ckk * ld, ld, rows * ld,
                                                gw + q * Kg * ckk, ckk);
                               });
        }
        if (gx) { /* dL/dcol = w^T gz into col (no longer needed), then col2im */
            FNN_PARALLEL_SPLIT(cnt * G * blocks, cnt * out_sample * rows / G, lo, hi,
                               for (ptrdiff_t t = lo; t < hi; t++) {
                                   ptrdiff_t j = t / (G * blocks), q = t / blocks % G;
                                   ptrdiff_t j0 = t % blocks * FNN_CONV_TASK_COLS;
                                   S(tiled_gemm)(ckk,
                                                 hw - j0 < FNN_CONV_TASK_COLS ? hw - j0
                                                                              : FNN_CONV_TASK_COLS,
                                                 Kg, wt + q * ckk * Kg, Kg,
                                                 gz + (j * g->K + q * Kg) * ld + j0, ld,
                                                 col + (j * rows + q * ckk) * ld + j0, ld);
                               });
            S(col2im)(g, col, cnt, ld, gx + n0 * in_sample);
        }
    }
    if (gbias)
        for (ptrdiff_t c = 0; c < g->K; c++) gbias[c] += (T)bsum[c];
}

#undef FNN_CONV_TASK_COLS
#undef FNN_TILES
#undef FNN_VL
