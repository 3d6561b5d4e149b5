/* Generic body, included by generic/conv.h: Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015) for the
 * stride-1, undilated, ungrouped 3x3 convolutions (conv.c: fnn_wino).
 *
 * The output is cut into 2x2 tiles, each computed from the 4x4 input window under it:
 *     Y = A^T [ (G g G^T) . (B^T d B) ] A
 * (. elementwise over the 16 positions e of the 4x4 transformed tile). With the
 * filters U = G g G^T transformed once per call and the windows V = B^T d B once per
 * sample, the 16 positions are 16 independent products M_e (Co, tiles) = U_e (Co, Ci)
 * V_e (Ci, tiles) on the register tiles of generic/tile.h: 16 multiplications per
 * 2x2 outputs and input channel instead of 36. The output transform applies the bias
 * and the activation to each row it yields.
 *
 * A sample goes through in blocks of tile rows (about FNN_WINO_TILES tiles each), so
 * that its transformed windows and products stay in the L2 cache between being
 * written and read. dL/dx of a convolution is the stride-1 3x3 convolution of dL/dz
 * with the filters transposed and flipped, padded by 2 - p: the same routine. */

/* Per 4x4 window rows r0 .. r3 of the padded planes: the transformed windows of tile
 * rows [i0, i1) of one channel, V[e] at v + e vstride (tile (i, j) at (i - i0) tw + j).
 * tmp: 4 Wb values. B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. */
static FNN_CLONES void S(wino_in)(const T *xp, ptrdiff_t Wb, ptrdiff_t tw, ptrdiff_t i0,
                                  ptrdiff_t i1, ptrdiff_t vstride, T *v, T *tmp)
{
    ptrdiff_t wt = 2 * tw + 2;
    for (ptrdiff_t i = i0; i < i1; i++) {
        const T *r0 = xp + 2 * i * Wb, *r1 = r0 + Wb, *r2 = r1 + Wb, *r3 = r2 + Wb;
        T *t0 = tmp, *t1 = tmp + Wb, *t2 = tmp + 2 * Wb, *t3 = tmp + 3 * Wb;
#pragma omp simd
        for (ptrdiff_t x = 0; x < wt; x++) { /* B^T d: the rows combined */
            t0[x] = r0[x] - r2[x];
            t1[x] = r1[x] + r2[x];
            t2[x] = r2[x] - r1[x];
            t3[x] = r1[x] - r3[x];
        }
        ptrdiff_t o = (i - i0) * tw;
        for (int a = 0; a < 4; a++) { /* (B^T d) B: the columns of each tile */
            const T *u = tmp + a * Wb;
            T *v0 = v + 4 * a * vstride + o, *v1 = v0 + vstride, *v2 = v1 + vstride;
            T *v3 = v2 + vstride;
#pragma omp simd
            for (ptrdiff_t j = 0; j < tw; j++) {
                T u0 = u[2 * j], u1 = u[2 * j + 1], u2 = u[2 * j + 2], u3 = u[2 * j + 3];
                v0[j] = u0 - u2;
                v1[j] = u1 + u2;
                v2[j] = u2 - u1;
                v3[j] = u1 - u3;
            }
        }
    }
}

/* The output rows of tile rows [i0, i1) of one channel from its products m (M[e] at
 * m + e mstride): Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], then y = act(Y + bias) (z =
 * Y + bias kept where z is given) on the rows within Ho x Wo. tmp: 4 tw values. */
static FNN_CLONES void S(wino_out)(const T *m, ptrdiff_t mstride, ptrdiff_t tw, ptrdiff_t i0,
                                   ptrdiff_t i1, ptrdiff_t Ho, ptrdiff_t Wo, int act, T a,
                                   T b, T bias, T *z, T *y, T *tmp)
{
    T *y0 = tmp, *y1 = tmp + 2 * tw;
    for (ptrdiff_t i = i0; i < i1; i++) {
        const T *mp[16];
        for (int e = 0; e < 16; e++) mp[e] = m + e * mstride + (i - i0) * tw;
#pragma omp simd
        for (ptrdiff_t j = 0; j < tw; j++) {
            T s0[4], s1[4];
            for (int c = 0; c < 4; c++) { /* A^T M: the rows combined */
                s0[c] = mp[c][j] + mp[4 + c][j] + mp[8 + c][j];
                s1[c] = mp[4 + c][j] - mp[8 + c][j] - mp[12 + c][j];
            }
            y0[2 * j] = s0[0] + s0[1] + s0[2];
            y0[2 * j + 1] = s0[1] - s0[2] - s0[3];
            y1[2 * j] = s1[0] + s1[1] + s1[2];
            y1[2 * j + 1] = s1[1] - s1[2] - s1[3];
        }
        for (ptrdiff_t r = 0; r < 2 && 2 * i + r < Ho; r++) {
            ptrdiff_t o = (2 * i + r) * Wo;
            S(conv_fwd)(act, a, b, Wo, tmp + r * 2 * tw, bias, z ? z + o : NULL, y + o);
        }
    }
}

/* U (16, Co, Ci) = G g G^T of the 3x3 filters of w (K, C, 3, 3): g = w[k, c] (Co = K,
 * Ci = C) or, flipped, g = w[k, c] rotated by 180 degrees (Co = C, Ci = K: the filters
 * of dL/dx). G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
static void S(wino_filters)(const T *w, ptrdiff_t K, ptrdiff_t C, int flip, T *U)
{
    ptrdiff_t Co = flip ? C : K, Ci = flip ? K : C;
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
            ptrdiff_t o = flip ? c * Ci + k : k * Ci + c;
            for (int r = 0; r < 4; r++) { /* (G g) G^T */
                const T *u = h + 3 * r;
                T *d = U + 4 * r * Co * Ci + o;
                d[0] = u[0];
                d[Co * Ci] = (T)0.5 * (u[0] + u[1] + u[2]);
                d[2 * Co * Ci] = (T)0.5 * (u[0] - u[1] + u[2]);
                d[3 * Co * Ci] = u[2];
            }
        }
}

/* One sample: y (Co, Ho, Wo) = act(conv(x, filters U) + bias), x's Ci planes splane
 * apart with rows srow apart; z (may be NULL) keeps the pre-activation, bias may be
 * NULL. buf: fnn_wino_size(wg) elements. */
static void S(wino_sample)(const fnn_wino *wg, const T *x, ptrdiff_t splane, ptrdiff_t srow,
                           const T *U, int act, T a, T b, const T *bias, T *z, T *y, T *buf)
{
    ptrdiff_t Ci = wg->Ci, Co = wg->Co, Hb = wg->Hb, Wb = wg->Wb, ldv = wg->ldv;
    ptrdiff_t tw = wg->tw, plane = wg->Ho * wg->Wo;
    T *xp = buf, *V = xp + Ci * Hb * Wb, *M = V + 16 * Ci * ldv, *tmp = M + 16 * Co * ldv;
    fnn_rows rows = {1, 1, ldv, 0, 0};
    for (ptrdiff_t c = 0; c < Ci; c++) { /* the planes padded: x at (ph, pw), zeros around */
        T *d = xp + c * Hb * Wb;
        const T *s = x + c * splane;
        ptrdiff_t ph = wg->ph, pw = wg->pw, right = Wb - pw - wg->Wi;
        memset(d, 0, (size_t)(ph * Wb) * sizeof(T));
        for (ptrdiff_t h = 0; h < wg->Hi; h++) {
            T *r = d + (ph + h) * Wb;
            memset(r, 0, (size_t)pw * sizeof(T));
            memcpy(r + pw, s + h * srow, (size_t)wg->Wi * sizeof(T));
            memset(r + pw + wg->Wi, 0, (size_t)right * sizeof(T));
        }
        memset(d + (ph + wg->Hi) * Wb, 0, (size_t)((Hb - ph - wg->Hi) * Wb) * sizeof(T));
    }
    for (ptrdiff_t i0 = 0; i0 < wg->th; i0 += wg->rb) {
        ptrdiff_t i1 = i0 + wg->rb < wg->th ? i0 + wg->rb : wg->th, nt = (i1 - i0) * tw;
        for (ptrdiff_t c = 0; c < Ci; c++)
            S(wino_in)(xp + c * Hb * Wb, Wb, tw, i0, i1, Ci * ldv, V + c * ldv, tmp);
        for (int e = 0; e < 16; e++)
            S(tiled_gemm)(Co, nt, Ci, U + e * Co * Ci, Ci, V + e * Ci * ldv, rows,
                          M + e * Co * ldv, ldv);
        for (ptrdiff_t k = 0; k < Co; k++)
            S(wino_out)(M + k * ldv, Co * ldv, tw, i0, i1, wg->Ho, wg->Wo, act, a, b,
                        bias ? bias[k] : (T)0, z ? z + k * plane : NULL, y + k * plane, tmp);
    }
}
