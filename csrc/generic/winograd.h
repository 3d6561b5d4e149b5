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
 * flipped, padded by 2 - p: the same routine. The weight gradient is the adjoint of
 * the forward: dL/dM = A dL/dY A^T per tile, dL/dU_e = sum over tiles of dL/dM_e V_e^T
 * (the tiles of generic/conv_wgrad.h, the tiles' axis summed), dL/dg = G^T dL/dU G.
 *
 * A sample goes through in blocks of tile rows (about FNN_WINO_TILES tiles each), so
 * that its transformed windows and products stay in cache between being written and
 * read. Every output is summed in a fixed order: nothing depends on the thread. */

/* The sub-planes of one sample (conv.c: fnn_wino): its Ci planes x (rows srow apart,
 * planes splane apart) padded and split by the parity of row and column, each
 * channel's four sub-planes sp apart (xs + (4 c + 2 (row % 2) + col % 2) sp). row: 2 tp
 * values of scratch. */
static FNN_CLONES void S(wino_split)(const fnn_wino *wg, const T *x, ptrdiff_t splane,
                                     ptrdiff_t srow, T *row, T *xs)
{
    ptrdiff_t tp = wg->tp, sp = wg->sp, pw = wg->pw, Wi = wg->Wi;
    for (ptrdiff_t c = 0; c < wg->Ci; c++)
        for (ptrdiff_t R = 0; R < 2 * wg->th + 2; R++) {
            T *ev = xs + (4 * c + 2 * (R % 2)) * sp + R / 2 * tp, *od = ev + sp;
            ptrdiff_t h = R - wg->ph;
            if (h < 0 || h >= wg->Hi) {
                memset(ev, 0, (size_t)tp * sizeof(T));
                memset(od, 0, (size_t)tp * sizeof(T));
                continue;
            }
            memset(row, 0, (size_t)pw * sizeof(T));
            memcpy(row + pw, x + c * splane + h * srow, (size_t)Wi * sizeof(T));
            memset(row + pw + Wi, 0, (size_t)(2 * tp - pw - Wi) * sizeof(T));
#pragma omp simd
            for (ptrdiff_t j = 0; j < tp; j++) {
                ev[j] = row[2 * j];
                od[j] = row[2 * j + 1];
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

/* The output of tile rows [i0, i1) of one channel from its products (M_e at m + e
 * mstride, the block's tiles from 0): Y = A^T M A into q (the four outputs of each tile
 * as four rows of ldq), then y = act(Y + bias) on the rows within Ho x Wo (z = Y +
 * bias kept where z is given; Y laid out in z, or in y, first). */
static FNN_CLONES void S(wino_out)(const fnn_wino *wg, const T *m, ptrdiff_t mstride,
                                   ptrdiff_t i0, ptrdiff_t i1, int act, T a, T b, T bias,
                                   T *z, T *y, T *q, ptrdiff_t ldq)
{
    ptrdiff_t tp = wg->tp, n = (i1 - i0) * tp, Ho = wg->Ho, Wo = wg->Wo;
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
    int plain = act == FNN_ACT_IDENTITY && bias == 0 && !z;
    for (ptrdiff_t i = i0; i < i1; i++)
        for (ptrdiff_t r = 0; r < 2 && 2 * i + r < Ho; r++) {
            ptrdiff_t o = (2 * i + r) * Wo;
            const T *qe = q + 2 * r * ldq + (i - i0) * tp, *qo = qe + ldq;
            T *dst = z ? z + o : y + o;
#pragma omp simd
            for (ptrdiff_t j = 0; j < Wo / 2; j++) {
                dst[2 * j] = qe[j];
                dst[2 * j + 1] = qo[j];
            }
            if (Wo % 2) dst[Wo - 1] = qe[Wo / 2];
            if (!plain) S(conv_fwd)(act, a, b, Wo, dst, bias, z ? z + o : NULL, y + o);
        }
}

/* U (16, Co, Ci) = G g G^T of the 3x3 filters of w (K, C, 3, 3): g = w[k, c] (Co = K,
 * Ci = C) or, flipped, g = w[k, c] rotated by 180 degrees (Co = C, Ci = K: the filters
 * of dL/dx). */
static void S(wino_filters)(const T *w, ptrdiff_t K, ptrdiff_t C, int flip, T *U)
{
    ptrdiff_t Co = flip ? C : K, Ci = flip ? K : C, e1 = Co * Ci;
    for (ptrdiff_t k = 0; k < K; k++)
        for (ptrdiff_t c = 0; c < C; c++) {
            const T *f = w + (k * C + c) * 9;
            T g[9], h[12];
            for (int t = 0; t < 9; t++) g[t] = f[flip ? 8 - t : t];
            for (int s = 0; s < 3; s++) { /* G g: 4 rows of 3 */
                h[s] = g[s];
                h[3 + s] = (T)0.5 * (g[s] + g[3 + s] + g[6 + s]);
                h[6 + s] = (T)0.5 * (g[s] - g[3 + s] + g[6 + s]);
                h[9 + s] = g[6 + s];
            }
            T *d = U + (flip ? c * Ci + k : k * Ci + c);
            for (int r = 0; r < 4; r++, d += 4 * e1) { /* (G g) G^T */
                const T *u = h + 3 * r;
                d[0] = u[0];
                d[e1] = (T)0.5 * (u[0] + u[1] + u[2]);
                d[2 * e1] = (T)0.5 * (u[0] - u[1] + u[2]);
                d[3 * e1] = u[2];
            }
        }
}

/* gw (K, C, 3, 3) += G^T dU G for every filter, dU[e] of filter (k, c) at du + k ldk +
 * e C + c. G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]. */
static void S(wino_filters_grad)(const T *du, ptrdiff_t ldk, ptrdiff_t K, ptrdiff_t C, T *gw)
{
    for (ptrdiff_t k = 0; k < K; k++)
        for (ptrdiff_t c = 0; c < C; c++) {
            const T *u = du + k * ldk + c;
            T t[3][4];
            for (int s = 0; s < 4; s++) { /* G^T dU */
                T u0 = u[s * C], u1 = u[(4 + s) * C], u2 = u[(8 + s) * C], u3 = u[(12 + s) * C];
                t[0][s] = u0 + (T)0.5 * (u1 + u2);
                t[1][s] = (T)0.5 * (u1 - u2);
                t[2][s] = (T)0.5 * (u1 + u2) + u3;
            }
            T *g = gw + (k * C + c) * 9;
            for (int r = 0; r < 3; r++) { /* (G^T dU) G */
                g[3 * r] += t[r][0] + (T)0.5 * (t[r][1] + t[r][2]);
                g[3 * r + 1] += (T)0.5 * (t[r][1] - t[r][2]);
                g[3 * r + 2] += (T)0.5 * (t[r][1] + t[r][2]) + t[r][3];
            }
        }
}

/* One sample: y (Co, Ho, Wo) = act(conv(x, filters U) + bias), x's Ci planes splane
 * apart with rows srow apart; z (may be NULL) keeps the pre-activation, bias may be
 * NULL. buf: fnn_wino_size(wg, 0) elements. */
static void S(wino_sample)(const fnn_wino *wg, const T *x, ptrdiff_t splane, ptrdiff_t srow,
                           const T *U, int act, T a, T b, const T *bias, T *z, T *y, T *buf)
{
    ptrdiff_t Ci = wg->Ci, Co = wg->Co, ldv = wg->ldv, plane = wg->Ho * wg->Wo;
    T *xs = buf, *V = xs + 4 * Ci * wg->sp, *M = V + 16 * Ci * ldv, *q = M + 16 * Co * ldv;
    fnn_rows rows = {1, 1, ldv, 0, 0};
    S(wino_split)(wg, x, splane, srow, q, xs);
    for (ptrdiff_t i0 = 0; i0 < wg->th; i0 += wg->rb) {
        ptrdiff_t i1 = i0 + wg->rb < wg->th ? i0 + wg->rb : wg->th, n = (i1 - i0) * wg->tp;
        ptrdiff_t nv = (n + FNN_VL - 1) / FNN_VL * FNN_VL; /* whole vectors: no tail */
        for (ptrdiff_t c = 0; c < Ci; c++)
            S(wino_in)(xs + 4 * c * wg->sp, wg->sp, wg->tp, i0 * wg->tp, n, Ci * ldv,
                       V + c * ldv);
        for (int e = 0; e < 16; e++)
            S(tiled_gemm)(Co, nv, Ci, U + e * Co * Ci, Ci, V + e * Ci * ldv, rows,
                          M + e * Co * ldv, ldv);
        for (ptrdiff_t k = 0; k < Co; k++)
            S(wino_out)(wg, M + k * ldv, Co * ldv, i0, i1, act, a, b, bias ? bias[k] : (T)0,
                        z ? z + k * plane : NULL, y + k * plane, q, ldv);
    }
}

/* dL/dM^T of tile rows [i0, i1): for each tile m of the block, dmt + e estride + m kp
 * (kp values) = (A dY A^T)_e, dY the tile's 2x2 of gz^T (Ho Wo rows of kp: dL/dz, K
 * values side by side), zero past the output's edge and for the spare tiles. */
static FNN_CLONES void S(wino_dm)(const fnn_wino *wg, const T *gzt, ptrdiff_t kp,
                                  ptrdiff_t i0, ptrdiff_t i1, const T *zero, ptrdiff_t estride,
                                  T *dmt)
{
    ptrdiff_t Ho = wg->Ho, Wo = wg->Wo, tp = wg->tp;
    for (ptrdiff_t i = i0; i < i1; i++)
        for (ptrdiff_t j = 0; j < tp; j++) {
            T *d = dmt + ((i - i0) * tp + j) * kp;
            int down = 2 * i + 1 < Ho, right = 2 * j + 1 < Wo, real = j < wg->tw;
            const T *p00 = real ? gzt + (2 * i * Wo + 2 * j) * kp : zero;
            const T *p01 = real && right ? p00 + kp : zero;
            const T *p10 = real && down ? p00 + Wo * kp : zero;
            const T *p11 = real && down && right ? p10 + kp : zero;
#pragma omp simd
            for (ptrdiff_t k = 0; k < kp; k++) {
                T q0[4], q1[4];
                q0[0] = p00[k], q0[1] = p00[k] + p01[k], q0[2] = p00[k] - p01[k];
                q0[3] = -p01[k]; /* dY A^T */
                q1[0] = p10[k], q1[1] = p10[k] + p11[k], q1[2] = p10[k] - p11[k];
                q1[3] = -p11[k];
                for (int s = 0; s < 4; s++) { /* A (dY A^T) */
                    d[s * estride + k] = q0[s];
                    d[(4 + s) * estride + k] = q0[s] + q1[s];
                    d[(8 + s) * estride + k] = q0[s] - q1[s];
                    d[(12 + s) * estride + k] = -q1[s];
                }
            }
        }
}

/* The weight gradient of one sample: acc (16 C rows of lda: dL/dU^T, e then c) +=
 * sum over its tiles of V_e dL/dM_e^T, from zero if `start`. x: the sample's input (C
 * planes of Hi x Wi); gzt: its dL/dz transposed (Ho Wo rows of kp). buf:
 * fnn_wino_size(wg, kp) elements. */
static void S(wino_wgrad_sample)(const fnn_wino *wg, const T *x, const T *gzt, ptrdiff_t kp,
                                 ptrdiff_t lda, int start, T *acc, T *buf)
{
    ptrdiff_t C = wg->Ci, K = wg->Co, ldv = wg->ldv, nvt = (K + FNN_VL - 1) / FNN_VL;
    T *xs = buf, *V = xs + 4 * C * wg->sp, *dmt = V + 16 * C * ldv;
    T *q = dmt + 16 * ldv * kp, *zero = q + 2 * wg->tp + 8;
    ptrdiff_t tasks = S(wgrad_tasks)(C, nvt);
    memset(zero, 0, (size_t)kp * sizeof(T));
    S(wino_split)(wg, x, wg->Hi * wg->Wi, wg->Wi, q, xs);
    for (ptrdiff_t i0 = 0; i0 < wg->th; i0 += wg->rb) {
        ptrdiff_t i1 = i0 + wg->rb < wg->th ? i0 + wg->rb : wg->th, n = (i1 - i0) * wg->tp;
        struct S(wgrad) w = {{1, 1, ldv, 0, 0}, 0, 0, 1, kp, 1, n, lda};
        for (ptrdiff_t c = 0; c < C; c++)
            S(wino_in)(xs + 4 * c * wg->sp, wg->sp, wg->tp, i0 * wg->tp, n, C * ldv,
                       V + c * ldv);
        S(wino_dm)(wg, gzt, kp, i0, i1, zero, ldv * kp, dmt);
        for (int e = 0; e < 16; e++)
            for (ptrdiff_t t = 0; t < tasks; t++)
                S(wgrad_task)(&w, t, 0, 1, !(start && i0 == 0), C, K, V + e * C * ldv,
                              dmt + e * ldv * kp, acc + e * C * lda, NULL);
    }
}
