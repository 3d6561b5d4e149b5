/* Generic body, included by generic/conv.h: the weight gradient of a convolution as a
 * register-tiled product.
 *
 * dL/dw (K, C kh kw) = sum over samples and output pixels of dL/dz (K, pixel) times the
 * input's window (C kh kw, pixel). Computed transposed, dL/dw^T = windows gz^T, it is a
 * product whose long axis (the pixels) is the summed one and whose result is small:
 * the tiles keep a block of dL/dw^T (up to 8 rows of C kh kw by up to 4 vectors of K)
 * in registers for the whole chunk, broadcast one input value per row and pixel, and
 * read dL/dz as gz^T, the pixels' K values side by side (packed once per chunk). The
 * input is read in place: each row (c, ki, kj) of the windows is the padded input
 * from that tap's offset, pixel (oh, ow) at oh sh Wp + ow sw, so strided convolutions
 * need no im2col columns here. Every element of dL/dw is one accumulator summed in
 * pixel order, samples in order: the result does not depend on the thread count. */

/* The weight-gradient product of some samples: the windows' row p starts at x +
 * offset(p) (sample s at + s sa), pixel (oh, ow) of a row at + oh ra + ow ca; gz^T
 * (samples, Ho Wo, ldb) holds dL/dz with K side by side (zeros past K). The sums wait
 * in acc (ckk rows of lda) between blocks of samples. */
struct S(wgrad) {
    fnn_rows rows;
    ptrdiff_t sa, ra, ca, ldb, Ho, Wo, lda;
};

/* c[i][0 .. NV VL) += sum over the pixels of cnt samples of a_i(pixel)
 * b(pixel)[0 .. NV VL), i < MB: a_i the windows' rows (pointers at the first sample's
 * pixel 0), b gz^T from its vector column. */
#define FNN_WGRAD_TILE(MB, NV)                                                                \
    static inline __attribute__((always_inline)) void S(wgrad_tile_##MB##_##NV)(             \
        const struct S(wgrad) *w, ptrdiff_t cnt, const T *const *a, const T *b, T *c)         \
    {                                                                                         \
        S(vec) acc[MB][NV];                                                                   \
        for (int i = 0; i < MB; i++)                                                          \
            for (int v = 0; v < NV; v++) acc[i][v] = *(S(vec) *)(c + (i * NV + v) * FNN_VL);  \
        ptrdiff_t Ho = w->Ho, Wo = w->Wo, ra = w->ra, ca = w->ca, ldb = w->ldb;               \
        for (ptrdiff_t s = 0; s < cnt; s++)                                                   \
            for (ptrdiff_t oh = 0; oh < Ho; oh++) {                                           \
                const T *ar[MB];                                                              \
                for (int i = 0; i < MB; i++) ar[i] = a[i] + s * w->sa + oh * ra;              \
                const T *br = b + (s * Ho + oh) * Wo * ldb;                                   \
                for (ptrdiff_t ow = 0, o = 0; ow < Wo; ow++, o += ca, br += ldb) {            \
                    S(vec) bv[NV];                                                            \
                    for (int v = 0; v < NV; v++) bv[v] = *(const S(vec) *)(br + v * FNN_VL);  \
                    for (int i = 0; i < MB; i++) {                                            \
                        T av = ar[i][o];                                                      \
                        for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];                 \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
        for (int i = 0; i < MB; i++)                                                          \
            for (int v = 0; v < NV; v++) *(S(vec) *)(c + (i * NV + v) * FNN_VL) = acc[i][v];  \
    }

/* Rows per tile for NV vectors: as many accumulators as 16 vector registers hold next
 * to the NV vectors of b and one broadcast; on AVX-512's 32 (the "wide" tiles, run
 * where fnn_avx512_runs) twice as many rows, 24 accumulators, so that each vector of
 * gz^T loaded meets twice the rows. */
#define FNN_WGRAD_TILES(X) X(8, 1) X(6, 2) X(4, 3) X(3, 4)
#define FNN_WGRAD_WIDE_TILES(X) X(16, 1) X(12, 2) X(8, 3) X(6, 4)
FNN_WGRAD_TILES(FNN_WGRAD_TILE)
FNN_WGRAD_WIDE_TILES(FNN_WGRAD_TILE)
#undef FNN_WGRAD_TILE
#define FNN_WGRAD_MAXMB 16
#define FNN_WGRAD_MAXNV 4
#define FNN_WGRAD_MAXACC 24 /* accumulators of the largest tile */

/* The vectors of b a tile takes at column vector v0 of nvt (4s and 3s, then the rest),
 * and the rows it takes with them. */
static inline ptrdiff_t S(wgrad_nv)(ptrdiff_t v0, ptrdiff_t nvt)
{
    ptrdiff_t rem = nvt - v0;
    return rem <= FNN_WGRAD_MAXNV ? rem : rem % 4 == 0 ? 4 : 3;
}

static inline ptrdiff_t S(wgrad_mb)(ptrdiff_t nv)
{
    return nv == 1 ? 8 : nv == 2 ? 6 : nv == 3 ? 4 : 3;
}

/* The row tiles of ckk rows for tiles of mb rows: of 2 mb rows where they run (wide),
 * the last of mb where the rows left fit in it (the first layer's 27 rows waste 3, not
 * 9). The number of tiles, and with t, tile t's first row and rows in *i0 and *tmb. */
static inline ptrdiff_t S(wgrad_rows)(ptrdiff_t ckk, ptrdiff_t mb, int wide, ptrdiff_t t,
                                      ptrdiff_t *i0, ptrdiff_t *tmb)
{
    ptrdiff_t step = wide ? 2 * mb : mb, full = ckk / step, rem = ckk % step;
    *i0 = t * step;
    *tmb = t < full || rem > mb ? step : mb;
    return full + (rem > 0);
}

/* Tiles of the chunk's product per group: per vector column block, its row blocks. */
static ptrdiff_t S(wgrad_tasks)(ptrdiff_t ckk, ptrdiff_t nvt)
{
    ptrdiff_t n = 0, i0, tmb;
    for (ptrdiff_t v0 = 0; v0 < nvt; v0 += S(wgrad_nv)(v0, nvt))
        n += S(wgrad_rows)(ckk, S(wgrad_mb)(S(wgrad_nv)(v0, nvt)), fnn_avx512_runs(), 0, &i0,
                           &tmb);
    return n;
}

/* Tile t of group q over samples [s0, s1): rows [i0, i0 + mb) of dL/dw^T against the
 * vector block at v0, their sums starting from acc (if load, else from 0) and put back
 * there, or, given gw, added into gw (Kg rows of ckk for the group, K columns from k0).
 * Rows past the last are computed on a copy of it and dropped. */
static FNN_CLONES_AVX512 void S(wgrad_task)(const struct S(wgrad) *w, ptrdiff_t t,
                                            ptrdiff_t s0, ptrdiff_t s1, int load, ptrdiff_t ckk,
                                            ptrdiff_t Kg, const T *x, const T *gzt, T *acc,
                                            T *gw)
{
    ptrdiff_t nvt = (Kg + FNN_VL - 1) / FNN_VL, v0 = 0, nv, i0, mb;
    int wide = fnn_avx512_runs();
    for (;; v0 += nv) { /* find the tile's vector block */
        nv = S(wgrad_nv)(v0, nvt);
        ptrdiff_t blocks = S(wgrad_rows)(ckk, S(wgrad_mb)(nv), wide, t, &i0, &mb);
        if (t < blocks) break;
        t -= blocks;
    }
    ptrdiff_t rows = ckk - i0 < mb ? ckk - i0 : mb;
    ptrdiff_t k0 = v0 * FNN_VL, nk = nv * FNN_VL, kn = Kg - k0 < nk ? Kg - k0 : nk;
    const T *a[FNN_WGRAD_MAXMB];
    for (ptrdiff_t i = 0; i < mb; i++)
        a[i] = x + s0 * w->sa + fnn_row_offset(&w->rows, i0 + (i < rows ? i : rows - 1));
    T c[FNN_WGRAD_MAXACC * FNN_VL];
    T *ac = acc + i0 * w->lda + k0;
    ptrdiff_t held = load ? rows : 0;
    for (ptrdiff_t i = 0; i < held; i++)
        memcpy(c + i * nk, ac + i * w->lda, (size_t)nk * sizeof(T));
    memset(c + held * nk, 0, (size_t)((mb - held) * nk) * sizeof(T));
    const T *b = gzt + s0 * w->Ho * w->Wo * w->ldb + k0;
    switch (mb * 8 + nv) {
#define FNN_CASE(MB, NV)                                  \
    case MB * 8 + NV:                                     \
        S(wgrad_tile_##MB##_##NV)(w, s1 - s0, a, b, c);   \
        break;
        FNN_WGRAD_TILES(FNN_CASE)
        FNN_WGRAD_WIDE_TILES(FNN_CASE)
#undef FNN_CASE
    }
    if (!gw)
        for (ptrdiff_t i = 0; i < rows; i++)
            memcpy(ac + i * w->lda, c + i * nk, (size_t)nk * sizeof(T));
    else
        for (ptrdiff_t i = 0; i < rows; i++)
            for (ptrdiff_t k = 0; k < kn; k++) gw[(k0 + k) * ckk + i0 + i] += c[i * nk + k];
}

/* Samples per block of the weight-gradient tiles: about FNN_WGRAD_PIXELS output pixels,
 * so that a block's gz^T stays in L1/L2 while every tile of a thread reads it. */
#define FNN_WGRAD_PIXELS 2048
static inline ptrdiff_t S(wgrad_block)(ptrdiff_t hw)
{
    return hw >= FNN_WGRAD_PIXELS ? 1 : (FNN_WGRAD_PIXELS + hw - 1) / hw;
}

/* Row dst (Wo rows of ldb) of gz^T = the rows src (K channels ld apart) transposed,
 * columns K .. ldb zero: blocks of FNN_VL x FNN_VL in vector registers (FNN_VL loads,
 * shuffles, FNN_VL stores) where they are whole, the rest value by value (one load and
 * one store each: 3% of a ResNet step). */
static FNN_CLONES void S(gz_pack_row)(const T *src, ptrdiff_t K, ptrdiff_t ld, ptrdiff_t Wo,
                                      ptrdiff_t ldb, T *dst)
{
    ptrdiff_t Kb = K / FNN_VL * FNN_VL, Wb = Wo / FNN_VL * FNN_VL;
    for (ptrdiff_t ow = 0; ow < Wb; ow += FNN_VL)
        for (ptrdiff_t k = 0; k < Kb; k += FNN_VL)
            S(fnn_transpose_block)(src + k * ld + ow, ld, dst + ow * ldb + k, ldb);
    for (ptrdiff_t ow = 0; ow < Wo; ow++) {
        T *d = dst + ow * ldb;
        for (ptrdiff_t k = ow < Wb ? Kb : 0; k < K; k++) d[k] = src[k * ld + ow];
        for (ptrdiff_t k = K; k < ldb; k++) d[k] = 0;
    }
}

/* Values of a row per pass of gz_row_t. */
#define FNN_GZ_SPAN 256

/* Backward's dL/dz = gy act'(z, y) of one output row of one sample, K channels (z, y, gy
 * at the row of channel 0, planes hw apart), written transposed as Wo rows of gz^T (ldb
 * apart, columns K .. ldb zero): the pass of conv_prologue and the packing of gz^T in
 * one, where neither the bias gradient nor gz itself (for dL/dx) is wanted. */
static FNN_CLONES void S(gz_row_t)(int act, T a, T b, ptrdiff_t K, ptrdiff_t hw, ptrdiff_t Wo,
                                   const T *z, const T *y, const T *gy, T *gzt, ptrdiff_t ldb)
{
    if (act == FNN_ACT_IDENTITY) { /* an identity's dL/dz is dL/dy: transposed in blocks */
        S(gz_pack_row)(gy, K, hw, Wo, ldb, gzt);
        return;
    }
    T tmp[FNN_GZ_SPAN];
    for (ptrdiff_t ow0 = 0; ow0 < Wo; ow0 += FNN_GZ_SPAN) {
        ptrdiff_t n = Wo - ow0 < FNN_GZ_SPAN ? Wo - ow0 : FNN_GZ_SPAN;
        for (ptrdiff_t c = 0; c < K; c++) {
            ptrdiff_t o = c * hw + ow0;
            S(conv_bwd)(act, a, b, n, z ? z + o : NULL, y ? y + o : NULL, gy + o, tmp);
            T *t = gzt + ow0 * ldb + c;
            for (ptrdiff_t k = 0; k < n; k++) t[k * ldb] = tmp[k];
        }
        for (ptrdiff_t ow = ow0; ow < ow0 + n; ow++)
            for (ptrdiff_t k = K; k < ldb; k++) gzt[ow * ldb + k] = 0;
    }
}
