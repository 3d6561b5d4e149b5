/* Generic body, included by generic/conv.h: the phase path of strided convolutions
 * (conv.c: fnn_phase_axis, fnn_conv_plan).
 *
 * Forward: each input channel is split by its padded rows modulo the stride into row
 * phases (only the residues some tap reads), and each row phase gathered once per
 * column tap j into a plane of len_h x Wo (row u, column v: padded input
 * (sh u + r, sw v + j dw)), so that tap (i, j) of output (oh, ow) is value
 * (oh + e_i, ow) of plane (r_i, j): the product w (K, C kh kw) b reads row (c, i, j)
 * of b at c psz + fh[i] + fw[j] in place, a run of Ho Wo values, and writes the output
 * planes themselves. It sums every output over (c, i, j) in the same order as the
 * im2col product. (Planes by column residue, as along the rows, would be read on wide
 * rows of Wo + max e_j columns whose last ones are dropped: 1/9 of the work thrown
 * away on an 8 x 8 output; the kw planes cost less to fill than that.)
 *
 * dL/dx: the inputs of one phase (rows of residue rh, columns of residue rw) take
 * dL/dz through that phase's taps only, a stride-1 correlation of dL/dz (padded once
 * per sample) with the sub-kernel w[:, :, taps(rh), taps(rw)]: one product per phase,
 * (C, K |taps(rh)| |taps(rw)|) by the padded dL/dz read through an offset table, on
 * wide rows of Wq columns; the rows of dL/dx are then put together from the phases'
 * rows. Phases no tap reads get zeros. */

/* o[2 v] = s0[v], o[2 v + 1] = s1[v], v < n: two residues' rows woven into one. */
static inline void S(weave2)(const T *restrict s0, const T *restrict s1, ptrdiff_t n,
                             T *restrict o)
{
    for (ptrdiff_t v = 0; v < n; v++) {
        o[2 * v] = s0[v];
        o[2 * v + 1] = s1[v];
    }
}

/* d[v] = s[step v], v < n (inlined with step 2 a constant: vector loads and shuffles). */
static inline __attribute__((always_inline)) void S(gather)(const T *restrict s,
                                                            ptrdiff_t step, ptrdiff_t n,
                                                            T *restrict d)
{
    for (ptrdiff_t v = 0; v < n; v++) d[v] = s[step * v];
}

/* The three column taps of a 3-wide kernel of stride 2: d_j[v] = s[2 v + j]. */
static inline void S(gather3)(const T *restrict s, ptrdiff_t n, T *restrict d0,
                              T *restrict d1, T *restrict d2)
{
    for (ptrdiff_t v = 0; v < n; v++) {
        d0[v] = s[2 * v];
        d1[v] = s[2 * v + 1];
        d2[v] = s[2 * v + 2];
    }
}

/* The padded rows phase_split copies into a buffer on the stack, in elements. */
#define FNN_PHASE_STAGE 4096

/* One row of a plane set: d + j plane, j < kw, from the padded row at s (columns
 * sw v + j dw, v < n). */
static inline __attribute__((always_inline)) void S(split_row)(const fnn_conv_geom *g,
                                                               const T *s, ptrdiff_t n,
                                                               ptrdiff_t plane, T *d)
{
    if (g->sw == 2 && g->kw == 3 && g->dw == 1)
        S(gather3)(s, n, d, d + plane, d + 2 * plane);
    else
        for (ptrdiff_t j = 0; j < g->kw; j++)
            if (g->sw == 2)
                S(gather)(s + j * g->dw, 2, n, d + j * plane);
            else
                S(gather)(s + j * g->dw, g->sw, n, d + j * plane);
}

/* Channels [c0, c1) of one sample x split into their planes in dst (psz per channel):
 * for each row residue rh some tap reads and each column tap j, Hl x Wo values, row u
 * column v the padded input's (sh u + rh, sw v + j dw), zeros where the padding is;
 * after the last channel 16 zeros (whole-vector reads past the last window). The
 * input rows go in order (the reads stream), a block at a time copied into padded
 * rows on the stack, from which every column tap's values are gathered without a test
 * (stride 2, 3 taps: in one pass). A whole block is copied before it is read: reads
 * straddling the copy's just-written stores would wait for them (a row at a time cost
 * 2x). */
static FNN_CLONES void S(phase_split)(const fnn_conv_geom *g, const fnn_conv_plan *pl,
                                      const T *x, ptrdiff_t c0, ptrdiff_t c1, T *dst)
{
    const fnn_phase_axis *ah = &pl->ah;
    ptrdiff_t Hl = ah->len, Wo = g->Wo, kw = g->kw, plane = Hl * Wo, sh = g->sh;
    ptrdiff_t H = g->H, W = g->W, pw = g->pw, Wp = W + 2 * pw, R = FNN_PHASE_STAGE / Wp;
    T stage[FNN_PHASE_STAGE];
    if (R > H) R = H;
    for (ptrdiff_t r = 0; r < R; r++) { /* the padding columns of the staged rows */
        memset(stage + r * Wp, 0, (size_t)pw * sizeof(T));
        memset(stage + r * Wp + pw + W, 0, (size_t)pw * sizeof(T));
    }
    ptrdiff_t lo[FNN_PHASE_MAXK], hi[FNN_PHASE_MAXK];
    for (ptrdiff_t j = 0; j < kw; j++) /* columns sw v + j dw - pw inside the row */
        fnn_out_range(W, g->sw, pw - j * g->dw, Wo, &lo[j], &hi[j]);
    for (ptrdiff_t c = c0; c < c1; c++) {
        T *dc = dst + c * pl->psz;
        for (ptrdiff_t rh = 0; rh < sh; rh++) { /* the rows of padding */
            if (ah->ridx[rh] < 0) continue;
            ptrdiff_t u0, u1;
            fnn_out_range(H, sh, g->ph - rh, Hl, &u0, &u1);
            for (ptrdiff_t j = 0; j < kw; j++) {
                T *d = dc + (ah->ridx[rh] * kw + j) * plane;
                memset(d, 0, (size_t)(u0 * Wo) * sizeof(T));
                memset(d + u1 * Wo, 0, (size_t)((Hl - u1) * Wo) * sizeof(T));
            }
        }
        const T *xc = x + c * H * W;
        for (ptrdiff_t h0 = 0, rh = g->ph % sh, u = g->ph / sh; h0 < H; h0 += R) {
            ptrdiff_t h1 = h0 + R < H ? h0 + R : H;
            for (ptrdiff_t h = h0; R && h < h1; h++)
                memcpy(stage + (h - h0) * Wp + pw, xc + h * W, (size_t)W * sizeof(T));
            for (ptrdiff_t h = h0; h < (R ? h1 : H); h++) {
                if (ah->ridx[rh] >= 0 && u < Hl) {
                    T *d = dc + ah->ridx[rh] * kw * plane + u * Wo;
                    if (R)
                        S(split_row)(g, stage + (h - h0) * Wp, Wo, plane, d);
                    else /* a row too long to stage: read in place, the padding apart */
                        for (ptrdiff_t j = 0; j < kw; j++) {
                            T *e = d + j * plane;
                            for (ptrdiff_t v = 0; v < lo[j]; v++) e[v] = 0;
                            S(gather)(xc + h * W + g->sw * lo[j] + j * g->dw - pw, g->sw,
                                      hi[j] - lo[j], e + lo[j]);
                            for (ptrdiff_t v = hi[j]; v < Wo; v++) e[v] = 0;
                        }
                }
                if (++rh == sh) rh = 0, u++;
            }
            if (!R) break;
        }
    }
    if (c1 == g->C) memset(dst + g->C * pl->psz, 0, 16 * sizeof(T));
}

/* Taps of the phases before phase f (dL/dx: where its weights and offsets start). */
static ptrdiff_t S(phase_taps_before)(const fnn_conv_geom *g, const fnn_conv_plan *pl,
                                      ptrdiff_t f)
{
    ptrdiff_t taps = 0;
    for (ptrdiff_t e = 0; e < f; e++) {
        ptrdiff_t rh = e / g->sw, rw = e % g->sw;
        taps += (pl->ah.st[rh + 1] - pl->ah.st[rh]) * (pl->aw.st[rw + 1] - pl->aw.st[rw]);
    }
    return taps;
}

/* The products' offset tables at `area` (aligned for ptrdiff_t): the forward's, row
 * (c, i, j) of b at c psz + fh[i] + fw[j] for c < C / G, then dL/dx's, phase after
 * phase (Kg times its taps), row (k, i, j) at k Hq Wq + bh[i] + bw[j]. One flat table:
 * the tiles' nested walk over short runs of taps cost a fifth of their speed. */
static ptrdiff_t *S(phase_tables)(const fnn_conv_geom *g, const fnn_conv_plan *pl, T *area)
{
    const fnn_phase_axis *ah = &pl->ah, *aw = &pl->aw;
    size_t al = sizeof(ptrdiff_t);
    uintptr_t a = ((uintptr_t)area + al - 1) / al * al;
    ptrdiff_t *off = (ptrdiff_t *)a, *o = off;
    ptrdiff_t Kg = g->K / g->groups, Cg = g->C / g->groups, plane = pl->Hq * pl->Wq;
    for (ptrdiff_t c = 0; c < Cg; c++)
        for (ptrdiff_t i = 0; i < g->kh; i++)
            for (ptrdiff_t j = 0; j < g->kw; j++) *o++ = c * pl->psz + pl->fh[i] + pl->fw[j];
    for (ptrdiff_t rh = 0; rh < g->sh; rh++)
        for (ptrdiff_t rw = 0; rw < g->sw; rw++)
            for (ptrdiff_t k = 0; k < Kg; k++)
                for (ptrdiff_t ti = ah->st[rh]; ti < ah->st[rh + 1]; ti++)
                    for (ptrdiff_t tj = aw->st[rw]; tj < aw->st[rw + 1]; tj++)
                        *o++ = k * plane + pl->bh[ti] + pl->bw[tj];
    return off;
}

/* wt: for each phase f = rh sw + rw, the rows c < C of its sub-kernel,
 * (k, i, j) for k < K / G, i in taps(rh), j in taps(rw) (in ord's order). */
static void S(phase_weights)(const fnn_conv_geom *g, const fnn_conv_plan *pl, const T *w,
                             T *wt)
{
    const fnn_phase_axis *ah = &pl->ah, *aw = &pl->aw;
    ptrdiff_t G = g->groups, Kg = g->K / G, Cg = g->C / G, kk = g->kh * g->kw;
    for (ptrdiff_t rh = 0; rh < g->sh; rh++)
        for (ptrdiff_t rw = 0; rw < g->sw; rw++)
            for (ptrdiff_t c = 0; c < g->C; c++) {
                ptrdiff_t q = c / Cg;
                for (ptrdiff_t k = 0; k < Kg; k++)
                    for (ptrdiff_t ti = ah->st[rh]; ti < ah->st[rh + 1]; ti++)
                        for (ptrdiff_t tj = aw->st[rw]; tj < aw->st[rw + 1]; tj++)
                            *wt++ = w[((q * Kg + k) * Cg + c % Cg) * kk +
                                      ah->ord[ti] * g->kw + aw->ord[tj]];
            }
}

/* dL/dx of one sample's rows of residue rh, group q, the residue's rows [u_lo, u_hi)
 * (clipped to its own): for each column residue rw the product of phase f = rh sw +
 * rw's sub-kernel with the padded dL/dz gzp into wide (phase f's region of sh sw C
 * rows of numax Wq), then the rows of gx put together from them, whole rows at a time
 * (stride 2: both residues' values interleaved in one pass), zeros where no tap
 * reaches. */
static FNN_CLONES void S(phase_input_grad_task)(const fnn_conv_geom *g, const fnn_conv_plan *pl,
                                                const T *wt, const T *gzp, ptrdiff_t rh,
                                                ptrdiff_t q, ptrdiff_t u_lo, ptrdiff_t u_hi,
                                                T *wide, T *gx)
{
    const fnn_phase_axis *ah = &pl->ah, *aw = &pl->aw;
    ptrdiff_t nu = ah->nu[rh];
    if (u_hi > nu) u_hi = nu;
    if (u_lo >= u_hi) return;
    ptrdiff_t G = g->groups, Kg = g->K / G, Cg = g->C / G, Wq = pl->Wq, sw = g->sw;
    ptrdiff_t ni = ah->st[rh + 1] - ah->st[rh], ldw = ah->numax * Wq, W = g->W, pw = g->pw;
    const T *src[FNN_PHASE_MAXS]; /* residue rw's values from its first input column */
    for (ptrdiff_t rw = 0; rw < sw; rw++) {
        ptrdiff_t f = rh * sw + rw, nj = aw->st[rw + 1] - aw->st[rw], P = Kg * ni * nj;
        ptrdiff_t nv = aw->nu[rw];
        T *wf = wide + (f * g->C + q * Cg) * ldw;
        src[rw] = P && nv ? wf : NULL;
        if (!src[rw]) continue;
        ptrdiff_t before = S(phase_taps_before)(g, pl, f);
        S(tiled_gemm_taps)(Cg, (u_hi - u_lo) * Wq - (u_hi == nu ? Wq - nv : 0), P,
                           wt + g->C * Kg * before + q * Cg * P, P,
                           gzp + q * Kg * pl->Hq * Wq + u_lo * Wq,
                           (fnn_taps){pl->toff + Cg * g->kh * g->kw + Kg * before},
                           wf + u_lo * Wq, ldw);
    }
    /* stride 2, both residues: each pair of columns (o[2 t], o[2 t + 1]) from the
     * residues of padded columns 2 t + pw and 2 t + 1 + pw, woven in one pass */
    int pair = sw == 2 && src[0] && src[1];
    ptrdiff_t r0 = pw & 1, e0 = (pw >> 1) - aw->u0[r0], e1 = ((pw + 1) >> 1) - aw->u0[1 - r0];
    ptrdiff_t h0 = g->sh * ah->u0[rh] + rh - g->ph;
    for (ptrdiff_t c = 0; c < Cg; c++)
        for (ptrdiff_t u = u_lo; u < u_hi; u++) {
            T *o = gx + ((q * Cg + c) * g->H + h0 + g->sh * u) * W;
            ptrdiff_t at = c * ldw + u * Wq;
            if (!ni) {
                memset(o, 0, (size_t)W * sizeof(T));
                continue;
            }
            if (pair) {
                S(weave2)(src[r0] + at + e0, src[1 - r0] + at + e1, W / 2, o);
                if (W & 1) {
                    ptrdiff_t k = W - 1 + pw;
                    o[W - 1] = src[k & 1][at + (k >> 1) - aw->u0[k & 1]];
                }
                continue;
            }
            for (ptrdiff_t w = 0, rw = pw % sw, v = pw / sw; w < W; w++) {
                o[w] = src[rw] ? src[rw][at + v - aw->u0[rw]] : 0;
                if (++rw == sw) rw = 0, v++;
            }
        }
}
