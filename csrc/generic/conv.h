/* Generic body of conv.c; see instantiate.h for T and S(). */
#include "act_grad.h"
#include "tile.h"

/* The rows and columns of the output that tap (ki, kj) reads from inside the input:
 * [oh0, oh1) x [ow0, ow1), the input offset of output (0, 0) for that tap, and the
 * input column of output column 0. */
struct S(tap) {
    ptrdiff_t oh0, oh1, ow0, ow1, off, col;
};

static inline struct S(tap) S(tap_range)(const fnn_conv_geom *g, ptrdiff_t ki, ptrdiff_t kj)
{
    struct S(tap) t;
    fnn_out_range(g->H, g->sh, g->ph - ki * g->dh, g->Ho, &t.oh0, &t.oh1);
    fnn_out_range(g->W, g->sw, g->pw - kj * g->dw, g->Wo, &t.ow0, &t.ow1);
    t.col = kj * g->dw - g->pw;
    t.off = (ki * g->dh - g->ph) * g->W + t.col;
    return t;
}

/* One row of the columns of one sample: dst (Ho, Wo) gets the input plane xc at the
 * tap's position, 0 in the padding; dst[hw .. ld) is zeroed (the tiles read whole
 * vectors and the weight-gradient dot products sum over the padded width). */
static FNN_CLONES void S(im2col_row)(const fnn_conv_geom *g, struct S(tap) t, const T *xc,
                                     ptrdiff_t ld, T *dst)
{
    ptrdiff_t Wo = g->Wo, sh = g->sh, sw = g->sw, W = g->W;
    ptrdiff_t n = t.ow1 - t.ow0;
    memset(dst, 0, (size_t)(t.oh0 * Wo) * sizeof(T));
    for (ptrdiff_t oh = t.oh0; oh < t.oh1; oh++) {
        const T *xr = xc + oh * sh * W + t.ow0 * sw + t.off;
        T *d = dst + oh * Wo;
        for (ptrdiff_t ow = 0; ow < t.ow0; ow++) d[ow] = 0;
        if (sw == 1) {
#pragma omp simd
            for (ptrdiff_t o = 0; o < n; o++) d[t.ow0 + o] = xr[o];
        } else if (sw == 2) { /* whole vectors while their reads stay within the row */
            ptrdiff_t o = 0, nv = (W - t.ow0 * sw - t.col) / (2 * FNN_VL) * FNN_VL;
            for (; o < (nv < n ? nv : n - n % FNN_VL); o += FNN_VL)
                S(fnn_evens)(xr + 2 * o, d + t.ow0 + o);
            for (; o < n; o++) d[t.ow0 + o] = xr[2 * o];
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

/* col (C kh kw, ld) = the columns of one sample x: tap by tap (its range computed
 * once), channel by channel. */
static void S(im2col_sample)(const fnn_conv_geom *g, const T *x, ptrdiff_t ld, T *col)
{
    ptrdiff_t kk = g->kh * g->kw, plane = g->H * g->W;
    for (ptrdiff_t k = 0; k < kk; k++) {
        struct S(tap) t = S(tap_range)(g, k / g->kw, k % g->kw);
        for (ptrdiff_t c = 0; c < g->C; c++)
            S(im2col_row)(g, t, x + c * plane, ld, col + (c * kk + k) * ld);
    }
}

/* gx = col2im(col (C kh kw, ld)) of one sample: channels, then taps, in order. */
static void S(col2im_sample)(const fnn_conv_geom *g, const T *col, ptrdiff_t ld, T *gx)
{
    ptrdiff_t kk = g->kh * g->kw, plane = g->H * g->W;
    memset(gx, 0, (size_t)(g->C * plane) * sizeof(T));
    for (ptrdiff_t r = 0; r < g->C * kk; r++) {
        ptrdiff_t k = r % kk;
        S(col2im_row)(g, S(tap_range)(g, k / g->kw, k % g->kw), col + r * ld,
                      gx + r / kk * plane);
    }
}

/* col (cnt, C kh kw, ld) of samples x[0 .. cnt), samples ss apart: one row (channel,
 * tap) per task, for every sample (the tap's range computed once). */
static void S(im2col)(const fnn_conv_geom *g, const T *x, ptrdiff_t cnt, ptrdiff_t ld,
                      ptrdiff_t ss, T *col)
{
    ptrdiff_t kk = g->kh * g->kw, rows = g->C * kk, plane = g->H * g->W;
    FNN_PARALLEL_SPLIT(rows, cnt * rows * ld, lo, hi,
                       for (ptrdiff_t r = lo; r < hi; r++) {
                           ptrdiff_t c = r / kk, k = r % kk;
                           struct S(tap) t = S(tap_range)(g, k / g->kw, k % g->kw);
                           for (ptrdiff_t j = 0; j < cnt; j++)
                               S(im2col_row)(g, t, x + (j * g->C + c) * plane, ld,
                                             col + j * ss + r * ld);
                       });
}

/* gx[0 .. cnt) = col2im(col (cnt, C kh kw, ld), samples ss apart): each channel by one
 * thread, its taps' ranges computed once, samples and taps in order. */
static void S(col2im)(const fnn_conv_geom *g, const T *col, ptrdiff_t cnt, ptrdiff_t ld,
                      ptrdiff_t ss, T *gx)
{
    ptrdiff_t kk = g->kh * g->kw, plane = g->H * g->W;
    FNN_PARALLEL_SPLIT(g->C, cnt * g->C * (plane + kk * ld), lo, hi,
                       for (ptrdiff_t c = lo; c < hi; c++) {
                           for (ptrdiff_t j = 0; j < cnt; j++)
                               memset(gx + (j * g->C + c) * plane, 0, (size_t)plane * sizeof(T));
                           for (ptrdiff_t k = 0; k < kk; k++) {
                               struct S(tap) t = S(tap_range)(g, k / g->kw, k % g->kw);
                               for (ptrdiff_t j = 0; j < cnt; j++)
                                   S(col2im_row)(g, t, col + j * ss + (c * kk + k) * ld,
                                                 gx + (j * g->C + c) * plane);
                           }
                       });
}

/* ---- Register tiles (generic/tile.h) for the products of the convolution ---- */

/* acc[i QB + q] += sum over columns j < n (a multiple of FNN_VL) of a[i lda + j] bq[q][j],
 * i < MB, q < QB, in vector lanes. */
#define FNN_DOT_TILE(MB, QB)                                                                  \
    static inline __attribute__((always_inline)) void S(dot_tile_##MB##_##QB)(               \
        ptrdiff_t n, const T *a, ptrdiff_t lda, const T *const *bq, S(vec) *acc)             \
    {                                                                                         \
        S(vec) r[MB][QB];                                                                     \
        for (int i = 0; i < MB; i++)                                                          \
            for (int q = 0; q < QB; q++) r[i][q] = acc[i * QB + q];                           \
        for (ptrdiff_t j = 0; j < n; j += FNN_VL) {                                           \
            S(vec) av[MB], bv[QB];                                                            \
            for (int i = 0; i < MB; i++) av[i] = *(const S(vec) *)(a + i * lda + j);          \
            for (int q = 0; q < QB; q++) bv[q] = *(const S(vec) *)(bq[q] + j);                \
            for (int i = 0; i < MB; i++)                                                      \
                for (int q = 0; q < QB; q++) r[i][q] += av[i] * bv[q];                        \
        }                                                                                     \
        for (int i = 0; i < MB; i++)                                                          \
            for (int q = 0; q < QB; q++) acc[i * QB + q] = r[i][q];                           \
    }

FNN_TILES(FNN_DOT_TILE)
#undef FNN_DOT_TILE

/* Columns of the weight-gradient products per pass, and output columns per task. */
#define FNN_DOT_COLS (32 * FNN_VL)
#define FNN_DOT_MAXQ 48

/* The rows [i0, i0 + mb) (mb <= 4) and columns [q0, q1) (at most FNN_DOT_MAXQ) of
 * g (m, ldg) += sum over cnt samples of a_s (m, n) b_s (., n)^T, column q of g meeting
 * row q of b_s (b + s sb, rows `r`). The columns are taken FNN_DOT_COLS at a time,
 * meeting every q there, so the rows of a and the windows of b that a pass reads stay
 * in L1; the sums wait in vector lanes between passes and are added up in a fixed
 * order at the end. */
static FNN_CLONES void S(tiled_dot)(ptrdiff_t i0, ptrdiff_t mb, ptrdiff_t q0, ptrdiff_t q1,
                                    ptrdiff_t cnt, ptrdiff_t n, const T *a, ptrdiff_t lda,
                                    ptrdiff_t sa, const T *b, fnn_rows r, ptrdiff_t sb, T *g,
                                    ptrdiff_t ldg)
{
    S(vec) acc[4 * FNN_DOT_MAXQ];
    ptrdiff_t off[FNN_DOT_MAXQ];
    const T *bq[FNN_DOT_MAXQ];
    ptrdiff_t nq = q1 - q0;
    for (ptrdiff_t k = 0; k < mb * nq; k++) acc[k] = (S(vec)){0};
    for (ptrdiff_t k = 0; k < nq; k++) off[k] = fnn_row_offset(&r, q0 + k);
    for (ptrdiff_t s = 0; s < cnt; s++) {
        for (ptrdiff_t k = 0; k < nq; k++) bq[k] = b + s * sb + off[k];
        const T *as = a + s * sa + i0 * lda;
        for (ptrdiff_t j = 0; j < n; j += FNN_DOT_COLS) {
            ptrdiff_t w = n - j < FNN_DOT_COLS ? n - j : FNN_DOT_COLS;
            for (ptrdiff_t q = 0; q < nq; q += 3) {
                ptrdiff_t qb = nq - q < 3 ? nq - q : 3;
                const T *bj[3];
                for (ptrdiff_t k = 0; k < qb; k++) bj[k] = bq[q + k] + j;
                switch (mb * 4 + qb) {
#define FNN_CASE(MB, QB)                                                                   \
    case MB * 4 + QB:                                                                      \
        S(dot_tile_##MB##_##QB)(w, as + j, lda, bj, acc + q * mb);                         \
        break;
                    FNN_TILES(FNN_CASE)
#undef FNN_CASE
                }
            }
        }
    }
    for (ptrdiff_t q = 0; q < nq; q += 3) {
        ptrdiff_t qb = nq - q < 3 ? nq - q : 3;
        for (ptrdiff_t i = 0; i < mb; i++)
            for (ptrdiff_t k = 0; k < qb; k++) {
                T sum = 0;
                for (int l = 0; l < FNN_VL; l++) sum += acc[q * mb + i * qb + k][l];
                g[(i0 + i) * ldg + q0 + q + k] += sum;
            }
    }
}

/* dst (C, Hp, Wp) = the planes src (C, H, W; rows `srow` apart, planes `splane` apart)
 * from row pt and column pl on, zeros around, then `slack` zeros (room for whole-vector
 * reads). */
static FNN_CLONES void S(pad_planes_at)(const T *src, ptrdiff_t C, ptrdiff_t splane,
                                        ptrdiff_t srow, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Hp,
                                        ptrdiff_t Wp, ptrdiff_t pt, ptrdiff_t pl,
                                        ptrdiff_t slack, T *dst)
{
    ptrdiff_t plane = Hp * Wp, gap = Wp - W;
    for (ptrdiff_t c = 0; c < C; c++, src += splane, dst += plane) {
        memset(dst, 0, (size_t)(pt * Wp + pl) * sizeof(T));
        for (ptrdiff_t h = 0; h < H; h++) {
            T *d = dst + (pt + h) * Wp + pl;
            memcpy(d, src + h * srow, (size_t)W * sizeof(T));
            if (h + 1 < H) memset(d + W, 0, (size_t)gap * sizeof(T));
        }
        T *end = dst + (pt + H - 1) * Wp + pl + W;
        memset(end, 0, (size_t)(dst + plane - end) * sizeof(T));
    }
    memset(dst, 0, (size_t)slack * sizeof(T));
}

/* dst (C, H + 2 ph, W + 2 pw) = the planes src with zeros around, as pad_planes_at. */
static void S(pad_planes)(const T *src, ptrdiff_t C, ptrdiff_t splane, ptrdiff_t srow,
                          ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t slack,
                          T *dst)
{
    S(pad_planes_at)(src, C, splane, srow, H, W, H + 2 * ph, W + 2 * pw, ph, pw, slack, dst);
}

/* Per activation: the forward epilogue over n values of one (sample, channel),
 * y = F(src + bias) (z = src + bias when z is kept), and the backward prologue,
 * dst = gy D(z, y) returning the sum of dst (in T's vector lanes for each run of
 * FNN_SUM_SPAN values, those added up in double). */
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
        for (ptrdiff_t k0 = 0; k0 < n; k0 += FNN_SUM_SPAN) {                              \
            ptrdiff_t k1 = n - k0 < FNN_SUM_SPAN ? n : k0 + FNN_SUM_SPAN;                \
            T t = 0;                                                                       \
            _Pragma("omp simd reduction(+ : t)") for (ptrdiff_t k = k0; k < k1; k++)       \
            {                                                                              \
                T v = gy[k] * D(z[k], y[k], a, b);                                         \
                dst[k] = v;                                                                \
                t += v;                                                                    \
            }                                                                              \
            s += t;                                                                        \
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


/* The output planes of a product as `rows` rows of `width` values, `stride` apart in
 * the product (im2col: the NCHW planes themselves; direct: the wide rows of the
 * padded width, whose last columns are not outputs). */
struct S(rowmap) {
    ptrdiff_t rows, width, stride;
};

/* Output rows per task of a product: about FNN_CONV_TASK_COLS columns. */
#define FNN_CONV_TASK_COLS (12 * FNN_VL)
static inline ptrdiff_t S(rows_per_task)(struct S(rowmap) m)
{
    ptrdiff_t r = FNN_CONV_TASK_COLS / m.stride;
    return r < 1 ? 1 : r > m.rows ? m.rows : r;
}

/* c (m, n) = a (m, P) b (P, n), b's rows where the plan reads the forward's input: the
 * columns, the padded input or the phase planes. */
static void S(conv_product)(const fnn_conv_geom *g, const fnn_conv_plan *pl, ptrdiff_t m,
                            ptrdiff_t n, ptrdiff_t P, const T *a, ptrdiff_t lda, const T *b,
                            T *c, ptrdiff_t ldc)
{
    (void)g;
    if (pl->phase)
        S(tiled_gemm_taps_wide)(pl->wide, m, n, P, a, lda, b, (fnn_taps){pl->toff}, c, ldc);
    else
        S(tiled_gemm)(m, n, P, a, lda, b, pl->in_rows, c, ldc);
}

/* One forward task: group q of one sample, output rows [r0, r1): the product
 * w_q b (b: that sample's columns, padded input or phase planes) into prod (K, ldp), then
 * z = prod + bias, y = act(z) into the NCHW planes while the rows are in cache (in
 * place where prod is y). */
static FNN_CLONES void S(conv_forward_task)(const fnn_conv_geom *g, const fnn_conv_plan *pl,
                                            int act, T a, T b, const T *w, const T *bias,
                                            const T *bq, ptrdiff_t q, ptrdiff_t r0,
                                            ptrdiff_t r1, struct S(rowmap) m, T *prod,
                                            ptrdiff_t ldp, T *z, T *y)
{
    ptrdiff_t Kg = g->K / g->groups, ckk = g->C / g->groups * g->kh * g->kw;
    ptrdiff_t hw = g->Ho * g->Wo, j0 = r0 * m.stride;
    T *pq = prod + q * Kg * ldp;
    S(conv_product)(g, pl, Kg, (r1 - r0) * m.stride - (r1 == m.rows ? m.stride - m.width : 0),
                    ckk, w + q * Kg * ckk, ckk, bq + j0, pq + j0, ldp);
    if (act == FNN_ACT_IDENTITY && !bias && !z && pq == y + q * Kg * hw) return;
    int side = m.stride == m.width; /* rows side by side (im2col): one call */
    for (ptrdiff_t k = 0; k < Kg; k++) {
        ptrdiff_t c = q * Kg + k;
        for (ptrdiff_t r = r0; r < r1; r += side ? r1 - r0 : 1) {
            ptrdiff_t o = c * hw + r * m.width;
            S(conv_fwd)(act, a, b, side ? (r1 - r0) * m.width : m.width,
                        pq + k * ldp + r * m.stride, bias ? bias[c] : (T)0, z ? z + o : NULL,
                        y + o);
        }
    }
}

/* One plane of backward's dL/dz: dst (ld) = gy act'(z, y) laid out as the rows of m,
 * every other column 0 (z, y, gy at the plane, hw values); returns the plane's sum. */
static double S(prologue_plane)(int act, T a, T b, const T *z, const T *y, const T *gy,
                                ptrdiff_t hw, struct S(rowmap) m, ptrdiff_t ld, T *dst)
{
    memset(dst, 0, (size_t)ld * sizeof(T));
    int side = m.stride == m.width; /* rows side by side (im2col): one call */
    double s = 0;
    for (ptrdiff_t r = 0; r < (side ? 1 : m.rows); r++) {
        ptrdiff_t o = r * m.width;
        s += S(conv_bwd)(act, a, b, side ? hw : m.width, z ? z + o : NULL, y ? y + o : NULL,
                         gy + o, dst + r * m.stride);
    }
    return s;
}

/* gz (cnt, K, ld) = gy act'(z, y) laid out as the rows of m; bsum[c] += the channel's
 * sum. One channel per thread at a time, samples in order: the sums do not depend on
 * the thread count. */
static void S(conv_prologue)(const fnn_conv_geom *g, int act, T a, T b, const T *z,
                             const T *y, const T *gy, ptrdiff_t cnt, struct S(rowmap) m,
                             ptrdiff_t ld, T *gz, double *bsum)
{
    ptrdiff_t K = g->K, hw = g->Ho * g->Wo;
    FNN_PARALLEL_SPLIT(K, cnt * K * hw, lo, hi,
                       for (ptrdiff_t c = lo; c < hi; c++) {
                           double s = 0;
                           for (ptrdiff_t j = 0; j < cnt; j++) {
                               ptrdiff_t o = (j * K + c) * hw;
                               s += S(prologue_plane)(act, a, b, z ? z + o : NULL,
                                                      y ? y + o : NULL, gy + o, hw, m, ld,
                                                      gz + (j * K + c) * ld);
                           }
                           if (bsum) bsum[c] += s;
                       });
}

/* xp (cnt, C, Hp, Wp) = x padded (from row pt and column pl on), each sample
 * `per_sample` apart and followed by `slack` zeros: one (sample, channel) per task. The
 * planes of x are `in_plane` apart and their rows `in_row`. */
static void S(pad_chunk_at)(const T *x, ptrdiff_t cnt, ptrdiff_t C, ptrdiff_t in_plane,
                            ptrdiff_t in_row, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Hp,
                            ptrdiff_t Wp, ptrdiff_t pt, ptrdiff_t pl, ptrdiff_t per_sample,
                            ptrdiff_t slack, T *xp)
{
    ptrdiff_t plane = Hp * Wp;
    FNN_PARALLEL_SPLIT(cnt * C, cnt * C * plane, lo, hi,
                       for (ptrdiff_t t = lo; t < hi; t++) {
                           ptrdiff_t j = t / C, c = t % C;
                           S(pad_planes_at)(x + t * in_plane, 1, in_plane, in_row, H, W, Hp,
                                            Wp, pt, pl, c == C - 1 ? slack : 0,
                                            xp + j * per_sample + c * plane);
                       });
}

/* pad_chunk_at with ph zeros above and below, pw either side. */
static void S(pad_chunk)(const T *x, ptrdiff_t cnt, ptrdiff_t C, ptrdiff_t in_plane,
                         ptrdiff_t in_row, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                         ptrdiff_t per_sample, ptrdiff_t slack, T *xp)
{
    S(pad_chunk_at)(x, cnt, C, in_plane, in_row, H, W, H + 2 * ph, W + 2 * pw, ph, pw,
                    per_sample, slack, xp);
}

/* gbias += the sums of the B blocks' bias parts (bpart, K per block) added in block
 * order, kept in bsum. */
static void S(sum_bias_parts)(const double *bpart, ptrdiff_t B, ptrdiff_t K, double *bsum,
                              T *gbias)
{
    for (ptrdiff_t c = 0; c < K; c++) {
        double s = 0;
        for (ptrdiff_t b = 0; b < B; b++) s += bpart[b * K + c];
        bsum[c] = s;
        gbias[c] += (T)s;
    }
}

#include "conv_phase.h"

#include "conv_wgrad.h"
#include "conv_1x1.h"
#include "winograd.h"

/* Winograd's buffers in the scratch: nb samples' (pl->r5 each), then the transformed
 * filters (at most 36 K C). */
static T *S(wino_area)(const fnn_conv_geom *g, const fnn_conv_plan *pl, T *scratch)
{
    return scratch + fnn_conv_parts_offset(g, pl) + 2 * pl->blocks * g->K + 1;
}

/* Output row oh of one sample's gz^T (Ho Wo, kp): packed from gz (K, ld; its planes the
 * rows of m) or, fused (gz_row_t), from gy itself (z, y, gy at the sample). */
static void S(gz_t_row)(const fnn_conv_geom *g, const fnn_conv_plan *pl, int fused, int act,
                        T a, T b, const T *z, const T *y, const T *gy, struct S(rowmap) m,
                        const T *gz, ptrdiff_t oh, T *gzt)
{
    ptrdiff_t Wo = g->Wo, o = oh * Wo;
    T *dst = gzt + oh * Wo * pl->kp;
    if (!fused)
        S(gz_pack_row)(gz + oh * m.stride, g->K, pl->ld, Wo, pl->kp, dst);
    else
        S(gz_row_t)(act, a, b, g->K, g->Ho * Wo, Wo, z ? z + o : NULL, y ? y + o : NULL,
                    gy + o, dst, pl->kp);
}

/* gz^T (cnt, Ho Wo, kp) of backward's dL/dz from gz (cnt, K, ld) or gy: one (sample,
 * output row) per task. */
static void S(conv_gz_t)(const fnn_conv_geom *g, const fnn_conv_plan *pl, int fused, int act,
                         T a, T b, const T *z, const T *y, const T *gy, ptrdiff_t cnt,
                         struct S(rowmap) m, const T *gz, T *gzt)
{
    ptrdiff_t Ho = g->Ho, os = g->K * Ho * g->Wo;
    FNN_PARALLEL_SPLIT(cnt * Ho, cnt * os, lo, hi,
                       for (ptrdiff_t t = lo; t < hi; t++) {
                           ptrdiff_t j = t / Ho;
                           S(gz_t_row)(g, pl, fused, act, a, b, z ? z + j * os : NULL,
                                       y ? y + j * os : NULL, gy + j * os, m,
                                       gz + j * g->K * pl->ld, t % Ho,
                                       gzt + j * Ho * g->Wo * pl->kp);
                       });
}

/* gw += the weight gradient of a chunk (generic/conv_wgrad.h) from gzt (cnt, Ho Wo,
 * kp): the tiles of every group. xs: the chunk's input padded to hp x wp planes (or not
 * padded, read in place), samples sa apart. */
static void S(conv_wgrad)(const fnn_conv_geom *g, const fnn_conv_plan *pl, const T *xs,
                          ptrdiff_t sa, ptrdiff_t hp, ptrdiff_t wp, ptrdiff_t cnt,
                          const T *gzt, T *acc, T *gw)
{
    ptrdiff_t G = g->groups, Kg = g->K / G, Cg = g->C / G, ckk = Cg * g->kh * g->kw;
    ptrdiff_t hw = g->Ho * g->Wo, nvt = (Kg + FNN_VL - 1) / FNN_VL, sb = S(wgrad_block)(hw);
    struct S(wgrad) w = {{g->kh, g->kw, hp * wp, g->dh * wp, g->dw}, sa, g->sh * wp, g->sw,
                         pl->kp, g->Ho, g->Wo, nvt * FNN_VL};
    ptrdiff_t tasks = S(wgrad_tasks)(ckk, nvt);
    FNN_PARALLEL_SPLIT(G * tasks, cnt * g->K * hw * ckk, lo, hi,
                       for (ptrdiff_t s0 = 0; s0 < cnt; s0 += sb) {
                           ptrdiff_t s1 = s0 + sb < cnt ? s0 + sb : cnt;
                           for (ptrdiff_t t = lo; t < hi; t++) {
                               ptrdiff_t q = t / tasks;
                               S(wgrad_task)(&w, t % tasks, s0, s1, s0 > 0, ckk, Kg,
                                             xs + q * Cg * hp * wp, gzt + q * Kg,
                                             acc + q * ckk * w.lda,
                                             s1 < cnt ? NULL : gw + q * Kg * ckk);
                           }
                       });
}

/* The forward of one sample: its columns, padded input or phase planes into col
 * (pl->r1), the product (direct, phase: through wide, pl->r2) into z and y, the task
 * blocks in order. */
static void S(conv_forward_sample)(const fnn_conv_geom *g, const fnn_conv_plan *pl, int act,
                                   T a, T b, const T *w, const T *bias, const T *x, T *col,
                                   T *wide, T *z, T *y)
{
    ptrdiff_t G = g->groups, hw = g->Ho * g->Wo;
    struct S(rowmap) m = {g->Ho, g->Wo, pl->fs};
    ptrdiff_t rpt = pl->phase ? m.rows : S(rows_per_task)(m);
    int to_y = m.stride == m.width; /* the products' rows are the output's */
    if (pl->phase)
        S(phase_split)(g, pl, x, 0, g->C, col);
    else if (pl->direct)
        S(pad_planes)(x, g->C, g->H * g->W, g->W, g->H, g->W, g->ph, g->pw,
                      pl->r1 - g->C * pl->Hp * pl->Wp, col);
    else
        S(im2col_sample)(g, x, pl->ld, col);
    for (ptrdiff_t q = 0; q < G; q++)
        for (ptrdiff_t r0 = 0; r0 < m.rows; r0 += rpt)
            S(conv_forward_task)(g, pl, act, a, b, w, bias, col + q * pl->gstep, q, r0,
                                 r0 + rpt < m.rows ? r0 + rpt : m.rows, m, to_y ? y : wide,
                                 to_y ? hw : pl->ld, z, y);
}

void S(fnn_conv_forward)(const fnn_conv_geom *g, const T *x, const T *w, const T *bias,
                         int act, T alpha, T beta, T *z, T *y, T *scratch)
{
    fnn_conv_plan pl = fnn_conv_plan_of(g);
    ptrdiff_t hw = g->Ho * g->Wo, G = g->groups, Cg = g->C / G;
    ptrdiff_t in_sample = g->C * g->H * g->W, out_sample = g->K * hw;
    ptrdiff_t work = g->N * out_sample * Cg * g->kh * g->kw;
    T *r1 = scratch, *r2 = scratch + pl.nb * pl.r1;
    T *r5 = S(wino_area)(g, &pl, scratch), *U = r5 + pl.nb * pl.r5;
    if (pl.wino) S(wino_filters)(w, g->K, g->C, 0, (int)pl.wf.tm, U);
    if (pl.phase) pl.toff = S(phase_tables)(g, &pl, r5);
    if (pl.wino) { /* each thread whole groups of samples, whatever the batch */
        ptrdiff_t gs = pl.wf.grp;
        FNN_PARALLEL_SLOTS((g->N + gs - 1) / gs, pl.nb, work, lo, hi, slot, per,
                           for (ptrdiff_t u = lo; u < hi; u++) {
                               ptrdiff_t j1 = (u + 1) * gs < g->N ? (u + 1) * gs : g->N;
                               for (ptrdiff_t j = u * gs; j < j1; j += per) {
                                   ptrdiff_t ns = j1 - j < per ? j1 - j : per;
                                   S(wino_samples)(&pl.wf, ns, x + j * in_sample, in_sample,
                                                   g->H * g->W, g->W, U, act, alpha, beta,
                                                   bias, z ? z + j * out_sample : NULL,
                                                   y + j * out_sample, out_sample,
                                                   r5 + slot * pl.r5);
                               }
                           });
        return;
    }
    /* each thread whole samples, in its own buffers */
    if (fnn_conv_by_samples(g, &pl)) {
        FNN_PARALLEL_SLOTS(g->N, pl.nb, work, lo, hi, slot, per,
                           for (ptrdiff_t j = lo; j < hi; j++)
                               S(conv_forward_sample)(g, &pl, act, alpha, beta, w, bias,
                                                      x + j * in_sample, r1 + slot * pl.r1,
                                                      r2 + slot * pl.r2,
                                                      z ? z + j * out_sample : NULL,
                                                      y + j * out_sample));
        return;
    }
    struct S(rowmap) m = {g->Ho, g->Wo, pl.fs};
    ptrdiff_t rpt = S(rows_per_task)(m), blocks = (m.rows + rpt - 1) / rpt;
    int to_y = m.stride == m.width;
    for (ptrdiff_t n0 = 0; n0 < g->N; n0 += pl.nb) {
        ptrdiff_t cnt = g->N - n0 < pl.nb ? g->N - n0 : pl.nb;
        if (pl.phase)
            FNN_PARALLEL_SPLIT(cnt * g->C, cnt * g->C * pl.psz, lo, hi,
                               for (ptrdiff_t t = lo; t < hi; t++) {
                                   ptrdiff_t j = t / g->C, c = t % g->C;
                                   S(phase_split)(g, &pl, x + (n0 + j) * in_sample, c, c + 1,
                                                  r1 + j * pl.r1);
                               });
        else if (pl.direct)
            S(pad_chunk)(x + n0 * in_sample, cnt, g->C, g->H * g->W, g->W, g->H, g->W, g->ph,
                         g->pw, pl.r1, pl.r1 - g->C * pl.Hp * pl.Wp, r1);
        else
            S(im2col)(g, x + n0 * in_sample, cnt, pl.ld, pl.r1, r1);
        FNN_PARALLEL_SPLIT(cnt * G * blocks, cnt * out_sample * Cg * g->kh * g->kw, lo, hi,
                           for (ptrdiff_t t = lo; t < hi; t++) {
                               ptrdiff_t j = t / (G * blocks), q = t / blocks % G;
                               ptrdiff_t b0 = t % blocks * rpt;
                               ptrdiff_t o = (n0 + j) * out_sample;
                               S(conv_forward_task)(
                                   g, &pl, act, alpha, beta, w, bias,
                                   r1 + j * pl.r1 + q * pl.gstep, q, b0,
                                   b0 + rpt < m.rows ? b0 + rpt : m.rows, m,
                                   to_y ? y + o : r2 + j * pl.r2, to_y ? hw : pl.ld,
                                   z ? z + o : NULL, y + o);
                           });
    }
}

/* dL/dx of one sample's group q, rows [r0, r1) of its planes, for a direct
 * convolution: the product of the flipped weights wf_q with the padded dL/dz, into
 * the wide rows of wide (C, H Wq), copied into gx. */
static FNN_CLONES void S(conv_input_grad_task)(const fnn_conv_geom *g, const fnn_conv_plan *pl,
                                               const T *wf, const T *gzp, ptrdiff_t q,
                                               ptrdiff_t r0, ptrdiff_t r1, T *wide, T *gx)
{
    ptrdiff_t G = g->groups, Kg = g->K / G, Cg = g->C / G, P = Kg * g->kh * g->kw;
    ptrdiff_t ldw = g->H * pl->Wq, j0 = r0 * pl->Wq;
    T *wq = wide + q * Cg * ldw;
    S(tiled_gemm)(Cg, (r1 - r0) * pl->Wq - (r1 == g->H ? pl->Wq - g->W : 0), P,
                  wf + q * Cg * P, P, gzp + q * Kg * pl->Hq * pl->Wq + j0, pl->gz_rows,
                  wq + j0, ldw);
    for (ptrdiff_t c = 0; c < Cg; c++)
        for (ptrdiff_t r = r0; r < r1; r++)
            memcpy(gx + ((q * Cg + c) * g->H + r) * g->W, wq + c * ldw + r * pl->Wq,
                   (size_t)g->W * sizeof(T));
}

/* The backward sample by sample. A thread takes whole blocks of samples and runs each
 * in runs of up to `per` samples through its own buffers (r1: the padded input, then
 * dL/dx's wide rows or columns; gz; r3: the padded dL/dz; r4: gz^T; pl->r1 .. pl->r4
 * elements per sample): dL/dz and gz^T of the run's samples, the weight-gradient tiles
 * over the whole run (their sums carried in the block's wpart from run to run, which
 * leaves them as they would be over the block at once), then dL/dx sample by sample.
 * wt: the weights as dL/dx takes them (Winograd: U, transformed); wpart: a block's sums
 * of dL/dw^T (ckk rows of the tiles' width per group); bpart: its K bias sums. */
struct S(conv_bwd_job) {
    const fnn_conv_geom *g;
    const fnn_conv_plan *pl;
    int act, fused;
    T a, b;
    const T *x, *z, *y, *gy, *wt, *U;
    T *gx, *r5;
    int gw, gbias;
};

/* dL/dz of sample j into gz (bias sums into bpart) and, for dL/dw, its gz^T into r4 and
 * its input padded into r1. */
static void S(bwd_prepare)(const struct S(conv_bwd_job) *J, ptrdiff_t j, T *r1, T *gz, T *r4,
                           double *bpart)
{
    const fnn_conv_geom *g = J->g;
    const fnn_conv_plan *pl = J->pl;
    ptrdiff_t hw = g->Ho * g->Wo, o = j * g->K * hw;
    const T *z = J->z ? J->z + o : NULL, *y = J->y ? J->y + o : NULL, *gy = J->gy + o;
    struct S(rowmap) m = {g->Ho, g->Wo, pl->bs};
    if (!J->fused)
        for (ptrdiff_t c = 0; c < g->K; c++) {
            double s = S(prologue_plane)(J->act, J->a, J->b, z ? z + c * hw : NULL,
                                         y ? y + c * hw : NULL, gy + c * hw, hw, m, pl->ld,
                                         gz + c * pl->ld);
            if (J->gbias) bpart[c] += s;
        }
    if (!J->gw) return;
    for (ptrdiff_t oh = 0; oh < g->Ho; oh++)
        S(gz_t_row)(g, pl, J->fused, J->act, J->a, J->b, z, y, gy, m, gz, oh, r4);
    if (g->ph || g->pw)
        S(pad_planes)(J->x + j * g->C * g->H * g->W, g->C, g->H * g->W, g->W, g->H, g->W,
                      g->ph, g->pw, 0, r1);
}

/* wpart (+)= the weight-gradient tiles over the run of cnt samples from j (their
 * buffers r1, r4 one sample's apart), from zero if the run starts its block. */
static void S(bwd_wgrad)(const struct S(conv_bwd_job) *J, ptrdiff_t j, ptrdiff_t cnt,
                         int start, const T *r1, const T *r4, T *wpart)
{
    const fnn_conv_geom *g = J->g;
    const fnn_conv_plan *pl = J->pl;
    ptrdiff_t G = g->groups, Kg = g->K / G, Cg = g->C / G, ckk = Cg * g->kh * g->kw;
    ptrdiff_t nvt = (Kg + FNN_VL - 1) / FNN_VL, in_sample = g->C * g->H * g->W;
    int pad = g->ph || g->pw;
    ptrdiff_t hp = pad ? pl->Hp : g->H, wp = pad ? pl->Wp : g->W;
    const T *xs = pad ? r1 : J->x + j * in_sample;
    struct S(wgrad) w = {{g->kh, g->kw, hp * wp, g->dh * wp, g->dw}, pad ? pl->r1 : in_sample,
                         g->sh * wp, g->sw, pl->kp, g->Ho, g->Wo, nvt * FNN_VL};
    ptrdiff_t tasks = S(wgrad_tasks)(ckk, nvt);
    for (ptrdiff_t t = 0; t < G * tasks; t++) {
        ptrdiff_t q = t / tasks;
        S(wgrad_task)(&w, t % tasks, 0, cnt, !start, ckk, Kg, xs + q * Cg * hp * wp,
                      r4 + q * Kg, wpart + q * ckk * w.lda, NULL);
    }
}

/* dL/dx of sample j from its dL/dz in gz. */
static void S(bwd_input_grad)(const struct S(conv_bwd_job) *J, ptrdiff_t j, T *r1,
                              const T *gz, T *r3)
{
    const fnn_conv_geom *g = J->g;
    const fnn_conv_plan *pl = J->pl;
    ptrdiff_t hw = g->Ho * g->Wo, G = g->groups, Kg = g->K / G, Cg = g->C / G;
    T *gx = J->gx + j * g->C * g->H * g->W;
    if (pl->phase) { /* each phase's correlation of the padded dL/dz */
        S(pad_planes_at)(gz, g->K, pl->ld, g->Wo, g->Ho, g->Wo, pl->Hq, pl->Wq, pl->ah.pad,
                         pl->aw.pad, pl->r3 - g->K * pl->Hq * pl->Wq, r3);
        for (ptrdiff_t rh = 0; rh < g->sh; rh++)
            for (ptrdiff_t q = 0; q < G; q++)
                S(phase_input_grad_task)(g, pl, J->wt, r3, rh, q, 0, pl->ah.numax, r1, gx);
    } else if (pl->direct) { /* the flipped convolution of the padded dL/dz */
        struct S(rowmap) mx = {g->H, g->W, pl->Wq};
        ptrdiff_t rpt = S(rows_per_task)(mx);
        S(pad_planes)(gz, g->K, pl->ld, pl->Wp, g->Ho, g->Wo, pl->qh, pl->qw,
                      pl->r3 - g->K * pl->Hq * pl->Wq, r3);
        for (ptrdiff_t q = 0; q < G; q++)
            for (ptrdiff_t r0 = 0; r0 < g->H; r0 += rpt)
                S(conv_input_grad_task)(g, pl, J->wt, r3, q, r0,
                                        r0 + rpt < g->H ? r0 + rpt : g->H, r1, gx);
    } else { /* dL/dcol = w^T gz into the columns, then col2im */
        ptrdiff_t ckk = Cg * g->kh * g->kw;
        fnn_rows gr = {1, 1, pl->ld, 0, 0};
        for (ptrdiff_t q = 0; q < G; q++)
            for (ptrdiff_t j1 = 0; j1 < hw; j1 += FNN_CONV_TASK_COLS)
                S(tiled_gemm)(ckk, hw - j1 < FNN_CONV_TASK_COLS ? hw - j1 : FNN_CONV_TASK_COLS,
                              Kg, J->wt + q * ckk * Kg, Kg, gz + q * Kg * pl->ld + j1, gr,
                              r1 + q * ckk * pl->ld + j1, pl->ld);
        S(col2im_sample)(g, r1, pl->ld, gx);
    }
}

/* Blocks [lo, hi) of samples on one thread with `per` samples' buffers from slot on. */
static void S(bwd_blocks)(const struct S(conv_bwd_job) *J, T *scratch, ptrdiff_t lo,
                          ptrdiff_t hi, ptrdiff_t slot, ptrdiff_t per, T *wpart,
                          double *bpart)
{
    const fnn_conv_geom *g = J->g;
    const fnn_conv_plan *pl = J->pl;
    ptrdiff_t N = g->N, K = g->K, ckk = g->C / g->groups * g->kh * g->kw;
    ptrdiff_t B = pl->blocks, in = g->C * g->H * g->W;
    T *r1 = scratch + slot * pl->r1, *gz = scratch + pl->nb * pl->r1 + slot * pl->r2;
    T *r3 = scratch + pl->nb * (pl->r1 + pl->r2) + slot * pl->r3;
    T *r4 = scratch + pl->nb * (pl->r1 + pl->r2 + pl->r3) + slot * pl->r4;
    T *r5 = J->r5 + slot * pl->r5;
    for (ptrdiff_t b = lo; b < hi; b++) {
        ptrdiff_t j0, j1;
        fnn_split(N, (int)b, (int)B, &j0, &j1);
        for (ptrdiff_t s0 = j0; s0 < j1; s0 += per) {
            ptrdiff_t cnt = j1 - s0 < per ? j1 - s0 : per;
            for (ptrdiff_t s = 0; s < cnt; s++)
                S(bwd_prepare)(J, s0 + s, r1 + s * pl->r1, gz + s * pl->r2, r4 + s * pl->r4,
                               bpart + b * K);
            if (J->gw) S(bwd_wgrad)(J, s0, cnt, s0 == j0, r1, r4, wpart + b * ckk * pl->kp);
            if (J->gx && pl->wino) /* Winograd on dL/dz, filters flipped, grp at a time */
                for (ptrdiff_t s = 0; s < cnt; s += pl->wb.grp) {
                    ptrdiff_t ns = cnt - s < pl->wb.grp ? cnt - s : pl->wb.grp;
                    S(wino_samples)(&pl->wb, ns, gz + s * pl->r2, pl->r2, pl->ld, pl->bs, J->U,
                                    FNN_ACT_IDENTITY, 0, 0, NULL, NULL, J->gx + (s0 + s) * in,
                                    in, r5 + s * pl->r5);
                }
            else if (J->gx)
                for (ptrdiff_t s = 0; s < cnt; s++)
                    S(bwd_input_grad)(J, s0 + s, r1 + s * pl->r1, gz + s * pl->r2,
                                      r3 + s * pl->r3);
        }
    }
}

/* g[k ldg] += sum over the B parts (part apart) of p[k], k < n, the parts added in order. */
static void S(sum_parts)(const T *p, ptrdiff_t B, ptrdiff_t part, ptrdiff_t n, T *g,
                         ptrdiff_t ldg)
{
    T acc[64];
    for (ptrdiff_t k0 = 0; k0 < n; k0 += 64) {
        ptrdiff_t m = n - k0 < 64 ? n - k0 : 64;
        memcpy(acc, p + k0, (size_t)m * sizeof(T));
        for (ptrdiff_t b = 1; b < B; b++)
#pragma omp simd
            for (ptrdiff_t k = 0; k < m; k++) acc[k] += p[b * part + k0 + k];
        for (ptrdiff_t k = 0; k < m; k++) g[(k0 + k) * ldg] += acc[k];
    }
}

/* Each thread whole blocks of samples (pl->blocks of them, fixed by the shape), then
 * the blocks' weight and bias sums added up in block order. */
static void S(conv_backward_by_samples)(const struct S(conv_bwd_job) *J, T *scratch, T *gw,
                                        T *gbias, double *bsum)
{
    const fnn_conv_geom *g = J->g;
    const fnn_conv_plan *pl = J->pl;
    ptrdiff_t K = g->K, G = g->groups, Kg = K / G, ckk = g->C / G * g->kh * g->kw;
    ptrdiff_t lda = (Kg + FNN_VL - 1) / FNN_VL * FNN_VL, part = ckk * pl->kp;
    ptrdiff_t B = pl->blocks;
    T *wpart = scratch + pl->nb * (pl->r1 + pl->r2 + pl->r3 + pl->r4) + K * ckk;
    double *bpart = fnn_conv_bias_parts(g, pl, scratch, sizeof(T));
    if (J->gbias)
        for (ptrdiff_t k = 0; k < B * K; k++) bpart[k] = 0;
    FNN_PARALLEL_SLOTS(B, pl->nb, g->N * K * g->Ho * g->Wo * ckk, lo, hi, slot, per,
                       S(bwd_blocks)(J, scratch, lo, hi, slot, per, wpart, bpart));
    if (gw) /* gw (Kg, ckk per group) += the blocks' dL/dw^T (ckk, lda per group) */
        FNN_PARALLEL_SPLIT(G * ckk, B * K * ckk, lo, hi,
                           for (ptrdiff_t r = lo; r < hi; r++) {
                               S(sum_parts)(wpart + r * lda, B, part, Kg,
                                            gw + r / ckk * Kg * ckk + r % ckk, ckk);
                           });
    if (gbias) S(sum_bias_parts)(bpart, B, K, bsum, gbias);
}

void S(fnn_conv_backward)(const fnn_conv_geom *g, const T *x, const T *w, int act, T alpha,
                          T beta, const T *z, const T *y, const T *gy, T *gw, T *gbias, T *gx,
                          T *scratch, double *bsum)
{
    fnn_conv_plan pl = fnn_conv_plan_of(g);
    ptrdiff_t hw = g->Ho * g->Wo, G = g->groups, Kg = g->K / G, Cg = g->C / G;
    ptrdiff_t kk = g->kh * g->kw, ckk = Cg * kk;
    ptrdiff_t in_sample = g->C * g->H * g->W, out_sample = g->K * hw;
    ptrdiff_t rblocks = (Kg + 3) / 4, cblocks = (ckk + FNN_DOT_MAXQ - 1) / FNN_DOT_MAXQ;
    T *r1 = scratch, *gz = r1 + pl.nb * pl.r1, *r3 = gz + pl.nb * pl.r2;
    T *r4 = r3 + pl.nb * pl.r3, *wt = r4 + pl.nb * pl.r4, *wacc = wt + g->K * ckk;
    ptrdiff_t gstep = pl.gstep;
    struct S(rowmap) m = {g->Ho, g->Wo, pl.bs};
    T *r5 = S(wino_area)(g, &pl, scratch), *U = r5 + pl.nb * pl.r5;
    if (gx) {
        if (pl.wino) /* U (16, C, K): the filters of dL/dx, transformed */
            S(wino_filters)(w, g->K, g->C, 1, (int)pl.wb.tm, U);
        else if (pl.phase) {
            S(phase_weights)(g, &pl, w, wt);
            pl.toff = S(phase_tables)(g, &pl, r5);
        }
        else if (pl.direct) /* wt (C, Kg kh kw) per group: w transposed, taps flipped */
            for (ptrdiff_t q = 0; q < G; q++)
                for (ptrdiff_t c = 0; c < Cg; c++)
                    for (ptrdiff_t k = 0; k < Kg; k++)
                        for (ptrdiff_t t = 0; t < kk; t++)
                            wt[((q * Cg + c) * Kg + k) * kk + t] =
                                w[((q * Kg + k) * Cg + c) * kk + kk - 1 - t];
        else /* wt (ckk, Kg) per group: w transposed */
            for (ptrdiff_t q = 0; q < G; q++)
                for (ptrdiff_t k = 0; k < Kg; k++)
                    for (ptrdiff_t p = 0; p < ckk; p++)
                        wt[(q * ckk + p) * Kg + k] = w[(q * Kg + k) * ckk + p];
    }
    if (pl.point) {
        S(point_backward)(g, &pl, act, alpha, beta, x, wt, z, y, gy, gw, gbias, gx, scratch,
                          bsum);
        return;
    }
    if (fnn_conv_by_samples(g, &pl) && (pl.wgrad || !gw)) {
        struct S(conv_bwd_job) J = {g,  &pl, act, gw && !gbias && !gx, alpha, beta, x, z, y,
                                    gy, wt, U,  gx, r5,  gw != NULL, gbias != NULL};
        S(conv_backward_by_samples)(&J, scratch, gw, gbias, bsum);
        return;
    }
    if (gbias)
        for (ptrdiff_t c = 0; c < g->K; c++) bsum[c] = 0;
    for (ptrdiff_t n0 = 0; n0 < g->N; n0 += pl.nb) {
        ptrdiff_t cnt = g->N - n0 < pl.nb ? g->N - n0 : pl.nb, o = n0 * out_sample;
        /* dL/dz, and its transpose for the weight-gradient tiles: straight from dL/dy
         * where neither the bias sums nor dL/dz itself (for dL/dx) are wanted (written
         * channel by channel, dL/dz streams faster than row by row across channels) */
        int fused = gw && pl.wgrad && !gbias && !gx;
        if (!fused)
            S(conv_prologue)(g, act, alpha, beta, z ? z + o : NULL, y ? y + o : NULL, gy + o,
                             cnt, m, pl.ld, gz, gbias ? bsum : NULL);
        if (gw && pl.wgrad)
            S(conv_gz_t)(g, &pl, fused, act, alpha, beta, z ? z + o : NULL, y ? y + o : NULL,
                         gy + o, cnt, m, gz, r4);
        if (gw && pl.wgrad) { /* dL/dw += gz b^T: the windows of x, padded if need be */
            int pad = g->ph || g->pw;
            if (pad)
                S(pad_chunk)(x + n0 * in_sample, cnt, g->C, g->H * g->W, g->W, g->H, g->W,
                             g->ph, g->pw, pl.r1, 0, r1);
            S(conv_wgrad)(g, &pl, pad ? r1 : x + n0 * in_sample, pad ? pl.r1 : in_sample,
                          pad ? pl.Hp : g->H, pad ? pl.Wp : g->W, cnt, r4, wacc, gw);
        } else if (gw) { /* dL/dw += gz b^T: each block of 4 x FNN_DOT_MAXQ by one thread */
            if (pl.direct)
                S(pad_chunk)(x + n0 * in_sample, cnt, g->C, g->H * g->W, g->W, g->H, g->W,
                             g->ph, g->pw, pl.r1, pl.r1 - g->C * pl.Hp * pl.Wp, r1);
            else
                S(im2col)(g, x + n0 * in_sample, cnt, pl.ld, pl.r1, r1);
            FNN_PARALLEL_SPLIT(G * rblocks * cblocks, cnt * out_sample * ckk, lo, hi,
                               for (ptrdiff_t t = lo; t < hi; t++) {
                                   ptrdiff_t q = t / (rblocks * cblocks);
                                   ptrdiff_t i0 = t / cblocks % rblocks * 4;
                                   ptrdiff_t p0 = t % cblocks * FNN_DOT_MAXQ;
                                   S(tiled_dot)(i0, Kg - i0 < 4 ? Kg - i0 : 4, p0,
                                                p0 + FNN_DOT_MAXQ < ckk ? p0 + FNN_DOT_MAXQ
                                                                        : ckk,
                                                cnt, pl.ld, gz + q * Kg * pl.ld, pl.ld, pl.r2,
                                                r1 + q * gstep, pl.in_rows, pl.r1,
                                                gw + q * Kg * ckk, ckk);
                               });
        }
        if (!gx) continue;
        if (pl.wino) { /* dL/dx: Winograd on dL/dz, each sample by one thread */
            FNN_PARALLEL_SLOTS(cnt, pl.nb, cnt * in_sample * g->K * kk, lo, hi, slot, per,
                               for (ptrdiff_t j = lo; j < hi; j++)
                                   S(wino_sample)(&pl.wb, gz + j * pl.r2, pl.ld, m.stride, U,
                                                  FNN_ACT_IDENTITY, 0, 0, NULL, NULL,
                                                  gx + (n0 + j) * in_sample,
                                                  r5 + slot * pl.r5));
        } else if (pl.phase) { /* dL/dx: each phase's correlation of the padded dL/dz */
            ptrdiff_t F = g->sh;
            S(pad_chunk_at)(gz, cnt, g->K, pl.ld, g->Wo, g->Ho, g->Wo, pl.Hq, pl.Wq,
                            pl.ah.pad, pl.aw.pad, pl.r3, pl.r3 - g->K * pl.Hq * pl.Wq, r3);
            struct S(rowmap) mx = {pl.ah.numax, pl.aw.numax, pl.Wq};
            ptrdiff_t rpt = S(rows_per_task)(mx), blocks = (mx.rows + rpt - 1) / rpt;
            FNN_PARALLEL_SPLIT(cnt * F * G * blocks, cnt * in_sample * Kg * kk, lo, hi,
                               for (ptrdiff_t t = lo; t < hi; t++) {
                                   ptrdiff_t j = t / (F * G * blocks);
                                   ptrdiff_t f = t / (G * blocks) % F, q = t / blocks % G;
                                   ptrdiff_t u0 = t % blocks * rpt;
                                   S(phase_input_grad_task)(g, &pl, wt, r3 + j * pl.r3, f, q,
                                                            u0, u0 + rpt, r1 + j * pl.r1,
                                                            gx + (n0 + j) * in_sample);
                               });
        } else if (pl.direct) { /* dL/dx: the flipped convolution of the padded dL/dz */
            struct S(rowmap) mx = {g->H, g->W, pl.Wq};
            ptrdiff_t rpt = S(rows_per_task)(mx), blocks = (g->H + rpt - 1) / rpt;
            S(pad_chunk)(gz, cnt, g->K, pl.ld, pl.Wp, g->Ho, g->Wo, pl.qh, pl.qw, pl.r3,
                         pl.r3 - g->K * pl.Hq * pl.Wq, r3);
            FNN_PARALLEL_SPLIT(cnt * G * blocks, cnt * in_sample * Kg * kk, lo, hi,
                               for (ptrdiff_t t = lo; t < hi; t++) {
                                   ptrdiff_t j = t / (G * blocks), q = t / blocks % G;
                                   ptrdiff_t b0 = t % blocks * rpt;
                                   S(conv_input_grad_task)(
                                       g, &pl, wt, r3 + j * pl.r3, q, b0,
                                       b0 + rpt < g->H ? b0 + rpt : g->H, r1 + j * pl.r1,
                                       gx + (n0 + j) * in_sample);
                               });
        } else { /* dL/dcol = w^T gz into the columns (no longer needed), then col2im */
            ptrdiff_t blocks = (hw + FNN_CONV_TASK_COLS - 1) / FNN_CONV_TASK_COLS;
            fnn_rows gr = {1, 1, pl.ld, 0, 0};
            FNN_PARALLEL_SPLIT(cnt * G * blocks, cnt * out_sample * ckk, lo, hi,
                               for (ptrdiff_t t = lo; t < hi; t++) {
                                   ptrdiff_t j = t / (G * blocks), q = t / blocks % G;
                                   ptrdiff_t j0 = t % blocks * FNN_CONV_TASK_COLS;
                                   S(tiled_gemm)(ckk,
                                                 hw - j0 < FNN_CONV_TASK_COLS ? hw - j0
                                                                              : FNN_CONV_TASK_COLS,
                                                 Kg, wt + q * ckk * Kg, Kg,
                                                 gz + (j * g->K + q * Kg) * pl.ld + j0, gr,
                                                 r1 + j * pl.r1 + q * ckk * pl.ld + j0,
                                                 pl.ld);
                               });
            S(col2im)(g, r1, cnt, pl.ld, pl.r1, gx + n0 * in_sample);
        }
    }
    if (gbias)
        for (ptrdiff_t c = 0; c < g->K; c++) gbias[c] += (T)bsum[c];
}

#undef FNN_CONV_TASK_COLS
#undef FNN_DOT_COLS
#undef FNN_DOT_MAXQ
#undef FNN_TILES
#undef FNN_WGRAD_TILES
#undef FNN_WGRAD_MAXMB
#undef FNN_WGRAD_MAXNV
#undef FNN_GZ_SPAN
#undef FNN_WGRAD_PIXELS
#undef FNN_VL
