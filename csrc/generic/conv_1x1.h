/* Generic body, included by generic/conv.h: the backward of 1x1 strided convolutions
 * (a ResNet's projection shortcuts), sample by sample.
 *
 * A 1x1 convolution of stride s is a product over a strided gather: with xg (C, Ho Wo)
 * the input at every s-th row and column (its im2col columns), y = w xg, and
 *     dL/dw = dL/dz xg^T          dL/dx = w^T dL/dz, spread to every s-th pixel.
 * dL/dw is taken as dot products along the pixels (vectors of 8 pixels), so that
 * dL/dz is read as it lies - straight from dL/dy when the convolution has no
 * activation and no bias - with no transposed copy; the products' partial sums stay in
 * vector lanes (lane l: the pixels l mod 8 of each run of vectors) across the samples of
 * a block and are added up once at the end. dL/dx is the product w^T dL/dz into one
 * sample's compact (C, Ho Wo) rows, written into dL/dx with the zeros between (the rows
 * s does not reach: all zeros) in the same pass, instead of zeroing dL/dx and adding
 * the columns back (col2im). */

/* acc[(i ldq + q) VL ..) (vector lanes) += sum over cnt samples and the n columns
 * (whole vectors) of a_s[i lda + j] b_s[q ldb + j], i < MB, q < QB: a_s = a + s sa,
 * b_s = b + s sb. */
#define FNN_POINT_TILE(MB, QB)                                                                \
    static inline __attribute__((always_inline)) void S(point_tile_##MB##_##QB)(             \
        ptrdiff_t cnt, ptrdiff_t n, const T *a, ptrdiff_t lda, ptrdiff_t sa, const T *b,      \
        ptrdiff_t ldb, ptrdiff_t sb, T *acc, ptrdiff_t ldq)                                   \
    {                                                                                         \
        S(vec) r[MB][QB];                                                                     \
        for (int i = 0; i < MB; i++)                                                          \
            for (int q = 0; q < QB; q++) r[i][q] = *(S(vec) *)(acc + (i * ldq + q) * FNN_VL); \
        for (ptrdiff_t s = 0; s < cnt; s++) {                                                 \
            const T *as = a + s * sa, *bs = b + s * sb;                                       \
            for (ptrdiff_t j = 0; j < n; j += FNN_VL) {                                       \
                S(vec) bv[QB];                                                                \
                for (int q = 0; q < QB; q++) bv[q] = *(const S(vec) *)(bs + q * ldb + j);     \
                for (int i = 0; i < MB; i++) {                                                \
                    S(vec) av = *(const S(vec) *)(as + i * lda + j);                          \
                    for (int q = 0; q < QB; q++) r[i][q] += av * bv[q];                       \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        for (int i = 0; i < MB; i++)                                                          \
            for (int q = 0; q < QB; q++) *(S(vec) *)(acc + (i * ldq + q) * FNN_VL) = r[i][q]; \
    }

FNN_TILES(FNN_POINT_TILE)
#undef FNN_POINT_TILE

/* vacc (K, C vectors) += the lanes of dL/dw over a run of cnt samples: gz (K rows of
 * ldz per sample, sgz apart), xg (C rows of ld per sample, sxg apart), n columns
 * (whole vectors, zero past the pixels in one of the two). Blocks of 4 output by 3
 * input channels, each over the whole run. */
static FNN_CLONES void S(point_wgrad)(ptrdiff_t K, ptrdiff_t C, ptrdiff_t cnt, ptrdiff_t n,
                                      const T *gz, ptrdiff_t ldz, ptrdiff_t sgz, const T *xg,
                                      ptrdiff_t ld, ptrdiff_t sxg, T *vacc)
{
    for (ptrdiff_t k = 0; k < K; k += 4) {
        ptrdiff_t mb = K - k < 4 ? K - k : 4;
        for (ptrdiff_t c = 0; c < C; c += 3) {
            ptrdiff_t qb = C - c < 3 ? C - c : 3;
            const T *a = gz + k * ldz, *b = xg + c * ld;
            T *acc = vacc + (k * C + c) * FNN_VL;
            switch (mb * 4 + qb) {
#define FNN_CASE(MB, QB)                                                         \
    case MB * 4 + QB:                                                            \
        S(point_tile_##MB##_##QB)(cnt, n, a, ldz, sgz, b, ld, sxg, acc, C);      \
        break;
                FNN_TILES(FNN_CASE)
#undef FNN_CASE
            }
        }
    }
}

/* d[0 .. n) = 0, in vector stores (the rows between are short: a call to memset
 * each cost more than the stores). */
static inline __attribute__((always_inline)) void S(zero_run)(T *d, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + FNN_VL <= n; i += FNN_VL) *(S(vec) *)(d + i) = (S(vec)){0};
    for (; i < n; i++) d[i] = 0;
}

/* gx (C, H, W) of one sample = the compact dL/dx rows dxc (C, Ho Wo; rows ld apart)
 * at every sh-th row and sw-th column, zeros elsewhere, row after row. */
static FNN_CLONES void S(point_spread)(const fnn_conv_geom *g, const T *dxc, ptrdiff_t ld,
                                       T *gx)
{
    ptrdiff_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo, sh = g->sh, sw = g->sw;
    for (ptrdiff_t c = 0; c < g->C; c++, gx += H * W)
        for (ptrdiff_t oh = 0; oh < Ho; oh++) {
            const T *src = dxc + c * ld + oh * Wo;
            T *d = gx + oh * sh * W;
            ptrdiff_t o = 0;
            if (sw == 2) /* whole vectors while their writes stay within the row */
                for (; o + FNN_VL <= Wo && 2 * (o + FNN_VL) <= W; o += FNN_VL)
                    S(fnn_spread2)(src + o, d + 2 * o);
            S(zero_run)(d + o * sw, W - o * sw);
            for (; o < Wo; o++) d[o * sw] = src[o];
            /* the rows up to the next output's, or to the plane's end */
            S(zero_run)(d + W, ((oh + 1 < Ho ? (oh + 1) * sh : H) - oh * sh - 1) * W);
        }
}

/* gw (K, C) += the blocks' lanes for output channels [k0, k1): block by block in order,
 * then lane by lane. */
static FNN_CLONES void S(point_sum_lanes)(const T *vparts, ptrdiff_t B, ptrdiff_t part,
                                          ptrdiff_t C, ptrdiff_t k0, ptrdiff_t k1, T *gw)
{
    for (ptrdiff_t i = k0 * C; i < k1 * C; i++) {
        S(vec) v = *(const S(vec) *)(vparts + i * FNN_VL);
        for (ptrdiff_t p = 1; p < B; p++) v += *(const S(vec) *)(vparts + p * part + i * FNN_VL);
        T sum = 0;
        for (int l = 0; l < FNN_VL; l++) sum += v[l];
        gw[i] += sum;
    }
}

/* What the blocks of a point backward share. */
struct S(point_job) {
    const fnn_conv_geom *g;
    const fnn_conv_plan *pl;
    int act;
    T a, b;
    const T *x, *z, *y, *gy, *wt;
    T *gw, *gx;
    int gbias, in_place; /* dL/dz is dL/dy, read in place */
};

/* Blocks [lo, hi) of samples on one thread, in runs of up to `per` samples through the
 * buffers from `slot` on (r1: the gathered input, then dL/dx's compact rows; r2: dL/dz):
 * dL/dz of the run (unless read in place) and its bias sums into bpart, the run's
 * weight-gradient lanes into the block's vacc, then dL/dx sample by sample. */
static void S(point_bwd_blocks)(const struct S(point_job) *J, T *scratch, ptrdiff_t lo,
                                ptrdiff_t hi, ptrdiff_t slot, ptrdiff_t per, T *vparts,
                                double *bpart)
{
    const fnn_conv_geom *g = J->g;
    const fnn_conv_plan *pl = J->pl;
    ptrdiff_t N = g->N, K = g->K, C = g->C, hw = g->Ho * g->Wo, ld = pl->ld;
    ptrdiff_t in = C * g->H * g->W, out = K * hw, B = pl->blocks;
    ptrdiff_t ldz = J->in_place ? hw : ld, sgz = J->in_place ? out : pl->r2;
    ptrdiff_t n = (hw + FNN_VL - 1) / FNN_VL * FNN_VL;
    T *r1 = scratch + slot * pl->r1, *r2 = scratch + pl->nb * pl->r1 + slot * pl->r2;
    struct S(rowmap) m = {g->Ho, g->Wo, g->Wo};
    fnn_rows gr = {1, 1, ldz, 0, 0};
    for (ptrdiff_t b = lo; b < hi; b++) {
        ptrdiff_t j0, j1;
        fnn_split(N, (int)b, (int)B, &j0, &j1);
        T *vacc = vparts + b * pl->part;
        if (J->gw) memset(vacc, 0, (size_t)(K * C * FNN_VL) * sizeof(T));
        for (ptrdiff_t s0 = j0; s0 < j1; s0 += per) {
            ptrdiff_t cnt = j1 - s0 < per ? j1 - s0 : per;
            const T *gz = J->in_place ? J->gy + s0 * out : r2;
            for (ptrdiff_t s = 0; s < cnt; s++) {
                ptrdiff_t o = (s0 + s) * out;
                if (!J->in_place)
                    for (ptrdiff_t c = 0; c < K; c++) {
                        ptrdiff_t oc = o + c * hw;
                        double sum = S(prologue_plane)(
                            J->act, J->a, J->b, J->z ? J->z + oc : NULL,
                            J->y ? J->y + oc : NULL, J->gy + oc, hw, m, ld,
                            r2 + s * pl->r2 + c * ld);
                        if (J->gbias) bpart[b * K + c] += sum;
                    }
                if (J->gw) S(im2col_sample)(g, J->x + (s0 + s) * in, ld, r1 + s * pl->r1);
            }
            if (J->gw) S(point_wgrad)(K, C, cnt, n, gz, ldz, sgz, r1, ld, pl->r1, vacc);
            if (J->gx)
                for (ptrdiff_t s = 0; s < cnt; s++) {
                    T *dxc = r1 + s * pl->r1;
                    for (ptrdiff_t j = 0; j < hw; j += FNN_CONV_TASK_COLS)
                        S(tiled_gemm)(C, hw - j < FNN_CONV_TASK_COLS ? hw - j : FNN_CONV_TASK_COLS,
                                      K, J->wt, K, gz + s * sgz + j, gr, dxc + j, ld);
                    S(point_spread)(g, dxc, ld, J->gx + (s0 + s) * in);
                }
        }
    }
}

/* The backward of a point plan (pl->point): each thread whole blocks of samples, then
 * gw += the blocks' lanes, added block by block in order and then lane by lane, and
 * the bias sums likewise. wt: w transposed (C, K). */
static void S(point_backward)(const fnn_conv_geom *g, const fnn_conv_plan *pl, int act, T a,
                              T b, const T *x, const T *wt, const T *z, const T *y,
                              const T *gy, T *gw, T *gbias, T *gx, T *scratch, double *bsum)
{
    ptrdiff_t K = g->K, C = g->C, B = pl->blocks, hw = g->Ho * g->Wo;
    T *vparts = scratch + pl->nb * (pl->r1 + pl->r2 + pl->r3 + pl->r4) + K * C;
    double *bpart = fnn_conv_bias_parts(g, pl, scratch, sizeof(T));
    int in_place = act == FNN_ACT_IDENTITY && !gbias && hw % FNN_VL == 0;
    struct S(point_job) J = {g, pl, act, a, b, x, z, y, gy, wt, gw, gx, gbias != NULL, in_place};
    if (gbias)
        for (ptrdiff_t k = 0; k < B * K; k++) bpart[k] = 0;
    FNN_PARALLEL_SLOTS(B, pl->nb, g->N * K * hw * C, lo, hi, slot, per,
                       S(point_bwd_blocks)(&J, scratch, lo, hi, slot, per, vparts, bpart));
    if (gw)
        FNN_PARALLEL_SPLIT(K, B * K * C * FNN_VL, lo, hi,
                           S(point_sum_lanes)(vparts, B, pl->part, C, lo, hi, gw));
    if (gbias) S(sum_bias_parts)(bpart, B, K, bsum, gbias);
}
