/* Generic body, included by generic/conv.h: Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015) for the
 * stride-1, undilated, ungrouped 3x3 convolutions (conv.c: fnn_wino).
 *
 * The output is cut into 2x2 tiles, each computed from the 4x4 input window under it:
 *     Y = A^T [ (G g G^T) . (B^T d B) ] A
 * (. elementwise over the 16 positions e of the 4x4 transformed tile), with
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2;
 *     1/2 -1/2 1/2; 0 0 1],  A^T = [1 1 1 0; 0 1 -1 -1].
 * With the filters U = G g G^T transformed once per call and the windows V = B^T d B
 * once per sample, the 16 positions are 16 independent products M_e (Co, tiles) =
 * U_e (Co, Ci) V_e (Ci, tiles) on the register tiles of generic/tile.h: 16
 * multiplications per 2x2 outputs and input channel instead of 36. The output
 * transform applies the bias and the activation to each row it yields.
 *
 * dL/dx is the stride-1 3x3 convolution of dL/dz with the filters transposed and
 * flipped, padded by 2 - p: the same routine. The weight gradient keeps the direct
 * tiles of generic/conv_wgrad.h: by Winograd (dL/dU_e = sum over tiles of dL/dM_e V_e^T,
 * dL/dM = A dL/dY A^T, then G^T dL/dU G) it measured 0.5-0.95x their speed with
 * F(2x2, 3x3) and 0.7-0.95x with F(4x4, 3x3) (16 to 64 channels), the transforms and
 * the short products over a block's tiles costing more than the multiplications saved.
 *
 * A sample goes through in blocks of tile rows (about FNN_WINO_TILES tiles each), so
 * that its transformed windows and products stay in cache between being written and
 * read. Every output is summed in a fixed order: nothing depends on the thread. */

/* The sub-planes of one sample (conv.c: fnn_wino): its Ci planes x (rows srow apart,
 * planes splane apart) padded and split by row and column modulo the tile size tm,
 * each channel's tm^2 sub-planes sp apart (xs + ((c tm + row % tm) tm + col % tm) sp,
 * row / tm and col / tm within). Each row is read in place: the columns [jlo, jhi)
 * whose tm values all lie inside the row in one vector pass, those at the edges one
 * by one (copying the row into a padded buffer first and reading it back at once
 * stalled on every row: the loads waited for the copy's stores). */
static FNN_CLONES void S(wino_split)(const fnn_wino *wg, const T *x, ptrdiff_t splane,
                                     ptrdiff_t srow, T *xs)
{
    ptrdiff_t tm = wg->tm, tp = wg->tp, sp = wg->sp, pw = wg->pw, Wi = wg->Wi;
    ptrdiff_t jlo = (pw + tm - 1) / tm, jhi = pw + Wi >= tm ? (pw + Wi - tm) / tm + 1 : 0;
    if (jhi > tp) jhi = tp;
    if (jhi < jlo) jhi = jlo;
    for (ptrdiff_t c = 0; c < wg->Ci; c++)
        for (ptrdiff_t R = 0; R < tm * (wg->th + 1); R++) {
            T *d = xs + (c * tm + R % tm) * tm * sp + R / tm * tp;
            ptrdiff_t h = R - wg->ph;
            if (h < 0 || h >= wg->Hi) {
                for (ptrdiff_t q = 0; q < tm; q++)
                    memset(d + q * sp, 0, (size_t)tp * sizeof(T));
                continue;
            }
            const T *xr = x + c * splane + h * srow; /* padded column k: xr[k - pw] */
            if (tm == 2) {
#pragma omp simd
                for (ptrdiff_t j = jlo; j < jhi; j++) {
                    d[j] = xr[2 * j - pw];
                    d[sp + j] = xr[2 * j + 1 - pw];
                }
            } else {
#pragma omp simd
                for (ptrdiff_t j = jlo; j < jhi; j++) {
                    d[j] = xr[4 * j - pw];
                    d[sp + j] = xr[4 * j + 1 - pw];
                    d[2 * sp + j] = xr[4 * j + 2 - pw];
                    d[3 * sp + j] = xr[4 * j + 3 - pw];
                }
            }
            for (ptrdiff_t j = 0; j < tp; j++) {
                if (j == jlo) j = jhi;
                if (j >= tp) break;
                for (ptrdiff_t q = 0; q < tm; q++) {
                    ptrdiff_t col = tm * j + q;
                    d[q * sp + j] = col >= pw && col < pw + Wi ? xr[col - pw] : 0;
                }
            }
        }
}

/* The transformed windows V = B^T d B of tiles [m0, m0 + n) of one channel (its
 * sub-planes xs), V_e at v + e vstride. */
static FNN_CLONES void S(wino_in)(const T *xs, ptrdiff_t sp, ptrdiff_t tp, ptrdiff_t m0,
                                  ptrdiff_t n, ptrdiff_t vstride, T *v)
{
    const T *ee = xs + m0, *eo = ee + sp, *oe = ee + 2 * sp, *oo = ee + 3 * sp;
#pragma omp simd
    for (ptrdiff_t m = 0; m < n; m++) {
        T d[4][4], t[4][4];
        for (int r = 0; r < 4; r += 2) { /* rows 2i + r (even) and 2i + r + 1 (odd) */
            ptrdiff_t o = m + r / 2 * tp;
            d[r][0] = ee[o], d[r][1] = eo[o], d[r][2] = ee[o + 1], d[r][3] = eo[o + 1];
            d[r + 1][0] = oe[o], d[r + 1][1] = oo[o], d[r + 1][2] = oe[o + 1];
            d[r + 1][3] = oo[o + 1];
        }
        for (int s = 0; s < 4; s++) { /* B^T d */
            t[0][s] = d[0][s] - d[2][s];
            t[1][s] = d[1][s] + d[2][s];
            t[2][s] = d[2][s] - d[1][s];
            t[3][s] = d[1][s] - d[3][s];
        }
        for (int a = 0; a < 4; a++) { /* (B^T d) B */
            v[(4 * a) * vstride + m] = t[a][0] - t[a][2];
            v[(4 * a + 1) * vstride + m] = t[a][1] + t[a][2];
            v[(4 * a + 2) * vstride + m] = t[a][2] - t[a][1];
            v[(4 * a + 3) * vstride + m] = t[a][1] - t[a][3];
        }
    }
}

/* F(4x4, 3x3)'s transforms apply a 6-point matrix to each of n tiles in two passes
 * (columns, then rows), each a vector loop over the tiles with its six inputs at
 * d0 .. d5 and its outputs os apart from o. */

/* o = B^T d, B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 * 0 2 -1 -2 1 0; 0 4 0 -5 0 1]. */
static inline __attribute__((always_inline)) void S(wino_bt6)(
    ptrdiff_t n, const T *d0, const T *d1, const T *d2, const T *d3, const T *d4,
    const T *d5, T *o, ptrdiff_t os)
{
#pragma omp simd
    for (ptrdiff_t m = 0; m < n; m++) {
        T a = d0[m], b = d1[m], c = d2[m], d = d3[m], e = d4[m], f = d5[m];
        o[m] = (T)4 * a - (T)5 * c + e;
        o[os + m] = d + e - (T)4 * (b + c);
        o[2 * os + m] = e - d + (T)4 * (b - c);
        o[3 * os + m] = e - c + (T)2 * (d - b);
        o[4 * os + m] = e - c + (T)2 * (b - d);
        o[5 * os + m] = (T)4 * b - (T)5 * d + f;
    }
}

/* o = A^T s (4 outputs), A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
 * 0 1 -1 8 -8 1]. */
static inline __attribute__((always_inline)) void S(wino_at6)(
    ptrdiff_t n, const T *d0, const T *d1, const T *d2, const T *d3, const T *d4,
    const T *d5, T *o, ptrdiff_t os)
{
#pragma omp simd
    for (ptrdiff_t m = 0; m < n; m++) {
        T a = d0[m], b = d1[m], c = d2[m], d = d3[m], e = d4[m], f = d5[m];
        o[m] = a + b + c + d + e;
        o[os + m] = b - c + (T)2 * (d - e);
        o[2 * os + m] = b + c + (T)4 * (d + e);
        o[3 * os + m] = b - c + (T)8 * (d - e) + f;
    }
}

/* The transformed windows V = B^T d B of F(4x4, 3x3) (6x6 windows), as wino_in; t: 36
 * rows of ldt (>= n) of scratch. */
static FNN_CLONES void S(wino_in4)(const T *xs, ptrdiff_t sp, ptrdiff_t tp, ptrdiff_t m0,
                                   ptrdiff_t n, ptrdiff_t vstride, T *v, T *t, ptrdiff_t ldt)
{
    for (int r = 0; r < 6; r++) { /* window row r: B^T along it, column c' to t[6 c' + r] */
        const T *p = xs + r % 4 * 4 * sp + m0 + r / 4 * tp;
        S(wino_bt6)(n, p, p + sp, p + 2 * sp, p + 3 * sp, p + 1, p + sp + 1, t + r * ldt,
                    6 * ldt);
    }
    for (int c = 0; c < 6; c++) { /* then down each column: V[6 r' + c] */
        const T *p = t + 6 * c * ldt;
        S(wino_bt6)(n, p, p + ldt, p + 2 * ldt, p + 3 * ldt, p + 4 * ldt, p + 5 * ldt,
                    v + c * vstride, 6 * vstride);
    }
}

/* The outputs Y (tm x tm per tile, as tm^2 rows of ldq from q, tiles of tile rows
 * [i0, i1) from 0) written to the rows within Ho x Wo as y = act(Y + bias) (z = Y +
 * bias kept where z is given; Y laid out in z, or in y, first). */
static inline __attribute__((always_inline)) void S(wino_rows)(
    const fnn_wino *wg, int tm, const T *q, ptrdiff_t ldq, ptrdiff_t i0, ptrdiff_t i1,
    int act, T a, T b, T bias, T *z, T *y)
{
    ptrdiff_t tp = wg->tp, Ho = wg->Ho, Wo = wg->Wo, full = Wo / tm;
    int plain = act == FNN_ACT_IDENTITY && bias == 0 && !z;
    for (ptrdiff_t i = i0; i < i1; i++)
        for (ptrdiff_t r = 0; r < tm && tm * i + r < Ho; r++) {
            ptrdiff_t o = (tm * i + r) * Wo;
            const T *qr = q + r * tm * ldq + (i - i0) * tp;
            T *dst = z ? z + o : y + o;
#pragma omp simd
            for (ptrdiff_t j = 0; j < full; j++)
                for (int c = 0; c < tm; c++) dst[tm * j + c] = qr[c * ldq + j];
            for (ptrdiff_t x = full * tm; x < Wo; x++) dst[x] = qr[x % tm * ldq + full];
            if (!plain) S(conv_fwd)(act, a, b, Wo, dst, bias, z ? z + o : NULL, y + o);
        }
}

/* The output of tile rows [i0, i1) of one channel from its products (M_e at m + e
 * mstride, the block's tiles from 0): Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], into q
 * (4 rows of ldq), then wino_rows. */
static FNN_CLONES void S(wino_out)(const fnn_wino *wg, const T *m, ptrdiff_t mstride,
                                   ptrdiff_t i0, ptrdiff_t i1, int act, T a, T b, T bias,
                                   T *z, T *y, T *q, ptrdiff_t ldq)
{
    ptrdiff_t n = (i1 - i0) * wg->tp;
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) {
        T s0[4], s1[4];
        for (int c = 0; c < 4; c++) { /* A^T M */
            s0[c] = m[c * mstride + k] + m[(4 + c) * mstride + k] + m[(8 + c) * mstride + k];
            s1[c] = m[(4 + c) * mstride + k] - m[(8 + c) * mstride + k] -
                    m[(12 + c) * mstride + k];
        }
        q[k] = s0[0] + s0[1] + s0[2]; /* (A^T M) A: row 0, column 0 */
        q[ldq + k] = s0[1] - s0[2] - s0[3];
        q[2 * ldq + k] = s1[0] + s1[1] + s1[2];
        q[3 * ldq + k] = s1[1] - s1[2] - s1[3];
    }
    S(wino_rows)(wg, 2, q, ldq, i0, i1, act, a, b, bias, z, y);
}

/* The same for F(4x4, 3x3) (q: 16 rows of ldq; t: 24 rows of ldq of scratch). */
static FNN_CLONES void S(wino_out4)(const fnn_wino *wg, const T *m, ptrdiff_t mstride,
                                    ptrdiff_t i0, ptrdiff_t i1, int act, T a, T b, T bias,
                                    T *z, T *y, T *q, ptrdiff_t ldq, T *t)
{
    ptrdiff_t n = (i1 - i0) * wg->tp, ms = mstride;
    for (int c = 0; c < 6; c++) { /* A^T down column c: t[6 r' + c] */
        const T *p = m + c * ms;
        S(wino_at6)(n, p, p + 6 * ms, p + 12 * ms, p + 18 * ms, p + 24 * ms, p + 30 * ms,
                    t + c * ldq, 6 * ldq);
    }
    for (int r = 0; r < 4; r++) { /* then along row r': q[4 r' + c'] */
        const T *p = t + 6 * r * ldq;
        S(wino_at6)(n, p, p + ldq, p + 2 * ldq, p + 3 * ldq, p + 4 * ldq, p + 5 * ldq,
                    q + 4 * r * ldq, ldq);
    }
    S(wino_rows)(wg, 4, q, ldq, i0, i1, act, a, b, bias, z, y);
}

/* o = G v of one column or row v of a 3x3 filter. F(2x2, 3x3): G = [1 0 0; 1/2 1/2
 * 1/2; 1/2 -1/2 1/2; 0 0 1]; F(4x4, 3x3): G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 * 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]. */
static inline __attribute__((always_inline)) void S(wino_g)(int tm, T v0, T v1, T v2, T o[6])
{
    if (tm == 2) {
        o[0] = v0, o[1] = (T)0.5 * (v0 + v1 + v2);
        o[2] = (T)0.5 * (v0 - v1 + v2), o[3] = v2;
    } else {
        o[0] = v0 / 4, o[1] = -(v0 + v1 + v2) / 6, o[2] = -(v0 - v1 + v2) / 6;
        o[3] = v0 / 24 + v1 / 12 + v2 / 6, o[4] = v0 / 24 - v1 / 12 + v2 / 6;
        o[5] = v2;
    }
}

/* u (n x n, n = tm + 2) = G g G^T of one 3x3 filter g = f (rotated by 180 degrees if
 * flip); fully unrolled for constant tm and flip, so that a loop over filters runs in
 * vector lanes. */
static inline __attribute__((always_inline)) void S(wino_filter)(const T *f, int flip, int tm,
                                                                 T u[6][6])
{
    int n = tm + 2;
    T g[3][3], h[6][3], o[6];
#pragma GCC unroll 9
    for (int t = 0; t < 9; t++) g[t / 3][t % 3] = f[flip ? 8 - t : t];
#pragma GCC unroll 3
    for (int j = 0; j < 3; j++) { /* G g */
        S(wino_g)(tm, g[0][j], g[1][j], g[2][j], o);
#pragma GCC unroll 6
        for (int r = 0; r < n; r++) h[r][j] = o[r];
    }
#pragma GCC unroll 6
    for (int j = 0; j < n; j++) { /* (G g) G^T */
        S(wino_g)(tm, h[j][0], h[j][1], h[j][2], o);
#pragma GCC unroll 6
        for (int r = 0; r < n; r++) u[j][r] = o[r];
    }
}

/* Rows [o0, o1) of U (E, Co, Ci), E = n^2: U[e][o][i] = the transformed filter of
 * w[o, i] (Co = K, Ci = C) or, flipped, of w[i, o] rotated (Co = C, Ci = K: the
 * filters of dL/dx). FNN_WINO_FBLK filters at a time into blk, then each e's values
 * out as one run: the E rows are Co Ci apart (a multiple of 4 KiB with 32 channels
 * or more), and writing one value to each in turn thrashed a single L1 set (4x the
 * time). */
#define FNN_WINO_FBLK 16
static FNN_CLONES void S(wino_filter_rows)(const T *w, ptrdiff_t K, ptrdiff_t C, int flip,
                                           int tm, ptrdiff_t o0, ptrdiff_t o1, T *U)
{
    ptrdiff_t Co = flip ? C : K, Ci = flip ? K : C, e1 = Co * Ci, n = tm + 2;
    T blk[36][FNN_WINO_FBLK];
    ptrdiff_t fs = flip ? 9 * C : 9; /* filter i + 1 from filter i */
    for (ptrdiff_t o = o0; o < o1; o++)
        for (ptrdiff_t i0 = 0; i0 < Ci; i0 += FNN_WINO_FBLK) {
            ptrdiff_t nb = Ci - i0 < FNN_WINO_FBLK ? Ci - i0 : FNN_WINO_FBLK;
            const T *f = w + (flip ? i0 * C + o : o * C + i0) * 9;
            /* constant tm and flip: the transform unrolls, vectorised over the filters */
#define FNN_FILTERS(TM, FLIP)                                                 \
    _Pragma("omp simd") for (ptrdiff_t b = 0; b < nb; b++)                    \
    {                                                                         \
        T u[6][6];                                                            \
        S(wino_filter)(f + b * fs, FLIP, TM, u);                              \
        _Pragma("GCC unroll 36")                                              \
        for (int e = 0; e < (TM + 2) * (TM + 2); e++)                         \
            blk[e][b] = u[e / (TM + 2)][e % (TM + 2)];                        \
    }
            if (tm == 2 && flip) FNN_FILTERS(2, 1)
            else if (tm == 2) FNN_FILTERS(2, 0)
            else if (flip) FNN_FILTERS(4, 1)
            else FNN_FILTERS(4, 0)
#undef FNN_FILTERS
            for (int e = 0; e < n * n; e++)
                memcpy(U + e * e1 + o * Ci + i0, blk[e], (size_t)nb * sizeof(T));
        }
}
#undef FNN_WINO_FBLK

/* U (E, Co, Ci) = G g G^T of the 3x3 filters of w (K, C, 3, 3) (wino_filter_rows),
 * rows split between the threads (each value computed alike on any of them). */
static void S(wino_filters)(const T *w, ptrdiff_t K, ptrdiff_t C, int flip, int tm, T *U)
{
    ptrdiff_t Co = flip ? C : K;
    FNN_PARALLEL_SPLIT(Co, 36 * K * C * 8, lo, hi,
                       S(wino_filter_rows)(w, K, C, flip, tm, lo, hi, U));
}

/* ns samples (wg->grp at most, one if a sample takes several blocks): y (Co, Ho, Wo)
 * = act(conv(x, filters U) + bias), samples xstride apart in x and ystride in z and
 * y, x's Ci planes splane apart with rows srow apart; z (may be NULL) keeps the
 * pre-activation, bias may be NULL. The samples' tiles lie side by side in the
 * products, which compute every column alike: grouping changes no result. buf:
 * fnn_wino_size(wg, ns) elements. */
static void S(wino_samples)(const fnn_wino *wg, ptrdiff_t ns, const T *x, ptrdiff_t xstride,
                            ptrdiff_t splane, ptrdiff_t srow, const T *U, int act, T a, T b,
                            const T *bias, T *z, T *y, ptrdiff_t ystride, T *buf)
{
    ptrdiff_t Ci = wg->Ci, Co = wg->Co, ldv = fnn_wino_ldv(wg, ns), plane = wg->Ho * wg->Wo;
    ptrdiff_t E = (wg->tm + 2) * (wg->tm + 2), sub = wg->tm * wg->tm * wg->sp;
    T *xs = buf, *V = xs + ns * Ci * sub, *M = V + E * Ci * ldv, *q = M + E * Co * ldv;
    T *t = q + wg->tm * wg->tm * ldv; /* F(4x4, 3x3)'s transforms: 36 rows of ldv */
    fnn_rows rows = {1, 1, ldv, 0, 0};
    for (ptrdiff_t s = 0; s < ns; s++)
        S(wino_split)(wg, x + s * xstride, splane, srow, xs + s * Ci * sub);
    for (ptrdiff_t i0 = 0; i0 < wg->th; i0 += wg->rb) {
        ptrdiff_t i1 = i0 + wg->rb < wg->th ? i0 + wg->rb : wg->th, n = (i1 - i0) * wg->tp;
        ptrdiff_t nv = (ns * n + FNN_VL - 1) / FNN_VL * FNN_VL; /* whole vectors: no tail */
        for (ptrdiff_t s = 0; s < ns; s++)
            for (ptrdiff_t c = 0; c < Ci; c++) {
                const T *xc = xs + (s * Ci + c) * sub;
                T *vc = V + c * ldv + s * n;
                if (wg->tm == 4)
                    S(wino_in4)(xc, wg->sp, wg->tp, i0 * wg->tp, n, Ci * ldv, vc, t, ldv);
                else
                    S(wino_in)(xc, wg->sp, wg->tp, i0 * wg->tp, n, Ci * ldv, vc);
            }
        for (ptrdiff_t e = 0; e < E; e++)
            S(tiled_gemm)(Co, nv, Ci, U + e * Co * Ci, Ci, V + e * Ci * ldv, rows,
                          M + e * Co * ldv, ldv);
        for (ptrdiff_t s = 0; s < ns; s++)
            for (ptrdiff_t k = 0; k < Co; k++) {
                T bk = bias ? bias[k] : (T)0, *yk = y + s * ystride + k * plane;
                T *zk = z ? z + s * ystride + k * plane : NULL;
                const T *mk = M + k * ldv + s * n;
                if (wg->tm == 4)
                    S(wino_out4)(wg, mk, Co * ldv, i0, i1, act, a, b, bk, zk, yk, q, ldv, t);
                else
                    S(wino_out)(wg, mk, Co * ldv, i0, i1, act, a, b, bk, zk, yk, q, ldv);
            }
    }
}

/* One sample (wino_samples). */
static void S(wino_sample)(const fnn_wino *wg, const T *x, ptrdiff_t splane, ptrdiff_t srow,
                           const T *U, int act, T a, T b, const T *bias, T *z, T *y, T *buf)
{
    S(wino_samples)(wg, 1, x, 0, splane, srow, U, act, a, b, bias, z, y, 0, buf);
}
