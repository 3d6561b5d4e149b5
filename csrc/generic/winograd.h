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
 * dL/dM = A dL/dY A^T, then G^T dL/dU G) it measured 0.5-0.95x their speed on a small
 * ResNet's 3x3 layers, the transforms costing more than the multiplications saved.
 *
 * A sample goes through in blocks of tile rows (about FNN_WINO_TILES tiles each), so
 * that its transformed windows and products stay in cache between being written and
 * read. Every output is summed in a fixed order: nothing depends on the thread. */

/* The sub-planes of one sample (conv.c: fnn_wino): its Ci planes x (rows srow apart,
 * planes splane apart) padded and split by the parity of row and column, each
 * channel's four sub-planes sp apart (xs + (4 c + 2 (row % 2) + col % 2) sp). */
static FNN_CLONES void S(wino_split)(const fnn_wino *wg, const T *x, ptrdiff_t splane,
                                     ptrdiff_t srow, T *xs)
{
    ptrdiff_t tp = wg->tp, sp = wg->sp, lo[2], hi[2];
    for (int q = 0; q < 2; q++) { /* sub-plane column j of parity q: input column 2 j + q - pw */
        ptrdiff_t s0 = q - wg->pw, top = wg->Wi - 1 - s0;
        lo[q] = s0 >= 0 ? 0 : (1 - s0) / 2;
        hi[q] = top < 0 ? 0 : top / 2 + 1 < tp ? top / 2 + 1 : tp;
        if (lo[q] > hi[q]) lo[q] = hi[q];
    }
    for (ptrdiff_t c = 0; c < wg->Ci; c++)
        for (ptrdiff_t R = 0; R < 2 * wg->th + 2; R++) {
            T *ev = xs + (4 * c + 2 * (R % 2)) * sp + R / 2 * tp;
            ptrdiff_t h = R - wg->ph;
            for (int q = 0; q < 2; q++) {
                T *d = ev + q * sp;
                if (h < 0 || h >= wg->Hi) {
                    memset(d, 0, (size_t)tp * sizeof(T));
                    continue;
                }
                const T *src = x + c * splane + h * srow + q - wg->pw;
                for (ptrdiff_t j = 0; j < lo[q]; j++) d[j] = 0;
#pragma omp simd
                for (ptrdiff_t j = lo[q]; j < hi[q]; j++) d[j] = src[2 * j];
                for (ptrdiff_t j = hi[q]; j < tp; j++) d[j] = 0;
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

/* One sample: y (Co, Ho, Wo) = act(conv(x, filters U) + bias), x's Ci planes splane
 * apart with rows srow apart; z (may be NULL) keeps the pre-activation, bias may be
 * NULL. buf: fnn_wino_size(wg) elements. */
static void S(wino_sample)(const fnn_wino *wg, const T *x, ptrdiff_t splane, ptrdiff_t srow,
                           const T *U, int act, T a, T b, const T *bias, T *z, T *y, T *buf)
{
    ptrdiff_t Ci = wg->Ci, Co = wg->Co, ldv = wg->ldv, plane = wg->Ho * wg->Wo;
    T *xs = buf, *V = xs + 4 * Ci * wg->sp, *M = V + 16 * Ci * ldv, *q = M + 16 * Co * ldv;
    fnn_rows rows = {1, 1, ldv, 0, 0};
    S(wino_split)(wg, x, splane, srow, xs);
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
