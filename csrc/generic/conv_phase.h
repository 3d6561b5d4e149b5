/* Generic body, included by generic/conv.h: the phase path of strided convolutions
 * (conv.c: fnn_phase_axis, fnn_conv_plan).
 *
 * Forward: each input channel is split by its padded rows and columns modulo the
 * stride into phase planes (only the residues some tap reads), len_h x len_w each, so
 * that tap (i, j) of output (oh, ow) is value (oh + e_i, ow + e_j) of plane
 * (r_i, r_j): the product w (K, C kh kw) b reads row (c, i, j) of b at
 * c psz + fh[i] + fw[j] in place and computes the output on wide rows of len_w columns
 * (the last len_w - Wo dropped), as the direct path does for stride 1. It sums every
 * output over (c, i, j) in the same order as the im2col product.
 *
 * dL/dx: the inputs of one phase (rows of residue rh, columns of residue rw) take
 * dL/dz through that phase's taps only, a stride-1 correlation of dL/dz (padded once
 * per sample) with the sub-kernel w[:, :, taps(rh), taps(rw)]: one product per phase,
 * (C, K |taps(rh)| |taps(rw)|) by the padded dL/dz read through an offset table, on
 * wide rows of Wq columns; the rows of dL/dx are then put together from the phases'
 * rows. Phases no tap reads get zeros. */

/* e0[v] = s[2 v], e1[v] = s[2 v + 1], v < n: a row dealt into its two residues. */
static inline void S(deal2)(const T *restrict s, ptrdiff_t n, T *restrict e0, T *restrict e1)
{
    for (ptrdiff_t v = 0; v < n; v++) {
        e0[v] = s[2 * v];
        e1[v] = s[2 * v + 1];
    }
}

/* o[2 v] = s0[v], o[2 v + 1] = s1[v], v < n: two residues' rows woven into one. */
static inline void S(weave2)(const T *restrict s0, const T *restrict s1, ptrdiff_t n,
                             T *restrict o)
{
    for (ptrdiff_t v = 0; v < n; v++) {
        o[2 * v] = s0[v];
        o[2 * v + 1] = s1[v];
    }
}

/* Stride 2 along a row of n values padded by p: residue r's positions [lo[r], hi[r])
 * are inside the row (in a phase row of len). */
static void S(row_residues)(ptrdiff_t n, ptrdiff_t p, ptrdiff_t len, ptrdiff_t lo[2],
                            ptrdiff_t hi[2])
{
    for (ptrdiff_t r = 0; r < 2; r++) {
        lo[r] = (p - r + 1) >> 1;
        hi[r] = ((p + n - 1 - r) >> 1) + 1;
        if (hi[r] > len) hi[r] = len;
        if (lo[r] > hi[r]) lo[r] = hi[r];
    }
}

/* phase_split of stride 2 on both axes, both residues of each read (a 3x3 or 5x5 of
 * stride 2): plane (rh, rw) row u is padded row 2 u + rh, its input values dealt pair
 * by pair (x[2 t], x[2 t + 1]) to the residues of their padded columns, zeros around
 * them; no division and no test per value (the general walk cost more than the copy
 * itself: a fifth of the forward on the small ResNet). */
static FNN_CLONES void S(phase_split2)(const fnn_conv_geom *g, const fnn_conv_plan *pl,
                                       const T *x, ptrdiff_t c0, ptrdiff_t c1, T *dst)
{
    ptrdiff_t Hl = pl->ah.len, Wl = pl->aw.len, plane = Hl * Wl, H = g->H, W = g->W;
    ptrdiff_t ph = g->ph, pw = g->pw, r0 = pw & 1, lo[2], hi[2];
    S(row_residues)(W, pw, Wl, lo, hi);
    for (ptrdiff_t c = c0; c < c1; c++) {
        T *dc = dst + c * pl->psz;
        for (ptrdiff_t rh = 0; rh < 2; rh++) /* the rows of padding */
            for (ptrdiff_t u = 0; u < Hl; u++) {
                ptrdiff_t h = 2 * u + rh - ph;
                if (h >= 0 && h < H) continue;
                memset(dc + 2 * rh * plane + u * Wl, 0, (size_t)Wl * sizeof(T));
                memset(dc + (2 * rh + 1) * plane + u * Wl, 0, (size_t)Wl * sizeof(T));
            }
        for (ptrdiff_t h = 0; h < H; h++) { /* input rows in order: the reads stream */
            ptrdiff_t k = h + ph, u = k >> 1;
            if (u >= Hl) continue;
            T *pr[2] = {dc + 2 * (k & 1) * plane + u * Wl, dc + (2 * (k & 1) + 1) * plane + u * Wl};
            const T *xr = x + (c * H + h) * W;
            S(deal2)(xr, W / 2, pr[r0] + (pw >> 1), pr[1 - r0] + ((pw + 1) >> 1));
            if (W & 1) pr[(W - 1 + pw) & 1][(W - 1 + pw) >> 1] = xr[W - 1];
            for (ptrdiff_t r = 0; r < 2; r++) {
                for (ptrdiff_t v = 0; v < lo[r]; v++) pr[r][v] = 0;
                for (ptrdiff_t v = hi[r]; v < Wl; v++) pr[r][v] = 0;
            }
        }
    }
}

/* Channels [c0, c1) of one sample x split into their phase planes in dst (psz per
 * channel), zeros where the padding is; after the last channel 16 zeros (whole-vector
 * reads past the last window). The columns every used residue takes from inside the
 * row, [ilo, ihi), go in one pass (stride 2: vector loads and shuffles for both
 * residues), the few at the edges one by one. */
static FNN_CLONES void S(phase_split)(const fnn_conv_geom *g, const fnn_conv_plan *pl,
                                      const T *x, ptrdiff_t c0, ptrdiff_t c1, T *dst)
{
    const fnn_phase_axis *ah = &pl->ah, *aw = &pl->aw;
    if (g->sh == 2 && g->sw == 2 && ah->res == 2 && aw->res == 2) {
        S(phase_split2)(g, pl, x, c0, c1, dst);
        if (c1 == g->C) memset(dst + g->C * pl->psz, 0, 16 * sizeof(T));
        return;
    }
    ptrdiff_t Hl = ah->len, Wl = aw->len, plane = Hl * Wl, sh = g->sh, sw = g->sw, pw = g->pw;
    ptrdiff_t vlo[FNN_PHASE_MAXS], vhi[FNN_PHASE_MAXS], ilo = 0, ihi = Wl;
    for (ptrdiff_t rw = 0; rw < sw; rw++) {
        if (aw->ridx[rw] < 0) continue;
        fnn_out_range(g->W, sw, g->pw - rw, Wl, &vlo[rw], &vhi[rw]);
        if (vlo[rw] > ilo) ilo = vlo[rw];
        if (vhi[rw] < ihi) ihi = vhi[rw];
    }
    if (ihi < ilo) ihi = ilo;
    int pair = sw == 2 && aw->res == 2;
    for (ptrdiff_t c = c0; c < c1; c++) {
        T *dc = dst + c * pl->psz;
        for (ptrdiff_t rh = 0; rh < sh; rh++) { /* the rows of padding */
            if (ah->ridx[rh] < 0) continue;
            ptrdiff_t u0, u1;
            fnn_out_range(g->H, sh, g->ph - rh, Hl, &u0, &u1);
            for (ptrdiff_t f = 0; f < aw->res; f++) {
                T *d = dc + (ah->ridx[rh] * aw->res + f) * plane;
                memset(d, 0, (size_t)(u0 * Wl) * sizeof(T));
                memset(d + u1 * Wl, 0, (size_t)((Hl - u1) * Wl) * sizeof(T));
            }
        }
        for (ptrdiff_t h = 0; h < g->H; h++) { /* input rows in order: the reads stream */
            ptrdiff_t rh = (h + g->ph) % sh, u = (h + g->ph) / sh;
            if (ah->ridx[rh] < 0 || u >= Hl) continue;
            const T *xr = x + (c * g->H + h) * g->W; /* padded column k: xr[k - pw] */
            T *d = dc + ah->ridx[rh] * aw->res * plane + u * Wl;
            if (pair) {
                T *e = d + plane;
#pragma omp simd
                for (ptrdiff_t v = ilo; v < ihi; v++) {
                    d[v] = xr[2 * v - pw];
                    e[v] = xr[2 * v + 1 - pw];
                }
            }
            for (ptrdiff_t rw = 0; rw < sw; rw++) {
                if (aw->ridx[rw] < 0) continue;
                T *e = d + aw->ridx[rw] * plane;
                for (ptrdiff_t v = 0; v < ilo; v++)
                    e[v] = v >= vlo[rw] && v < vhi[rw] ? xr[sw * v + rw - pw] : 0;
                if (!pair)
                    for (ptrdiff_t v = ilo; v < ihi; v++) e[v] = xr[sw * v + rw - pw];
                for (ptrdiff_t v = ihi; v < Wl; v++)
                    e[v] = v >= vlo[rw] && v < vhi[rw] ? xr[sw * v + rw - pw] : 0;
            }
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
