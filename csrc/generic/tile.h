/* Register-tile products shared by the convolutions (generic/conv.h) and the dense
 * inference chain (generic/infer.h); generic: see instantiate.h for T and S(). The
 * family including this body #undefs FNN_TILES and FNN_VL at its end. */

/* ---- Register tiles ----
 * BLAS packs its operands on every call; for the short, wide products of a
 * convolution (few output channels, one sample's columns) the packing costs as much as
 * the arithmetic. These tiles read their b operand in place, row p where `fnn_rows`
 * puts it (im2col columns, or the shifted windows of a padded plane), and keep a block
 * of results in registers: up to 4 rows by 3 vectors. */
typedef T S(vec) __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));
#define FNN_VL ((ptrdiff_t)(32 / sizeof(T)))

#define FNN_TILES(X) X(1, 1) X(1, 2) X(1, 3) X(2, 1) X(2, 2) X(2, 3) X(3, 1) X(3, 2) X(3, 3) \
    X(4, 1) X(4, 2) X(4, 3)

/* acc[i][.] += a[i lda + p] (row p of b at bp), i < MB (one step of a tile). */
#define FNN_TILE_STEP(MB, NV, bp)                                                     \
    do {                                                                              \
        S(vec) bv[NV];                                                                \
        for (int v = 0; v < NV; v++) bv[v] = *(const S(vec) *)((bp) + v * FNN_VL);   \
        for (int i = 0; i < MB; i++) {                                                \
            T av = a[i * lda + p];                                                    \
            for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];                     \
        }                                                                             \
    } while (0)

/* A tile's MB x NV accumulators, zeroed; stored to c (rows ldc apart) at the end. */
#define FNN_TILE_ZERO(MB, NV)                                                         \
    S(vec) acc[MB][NV];                                                               \
    for (int i = 0; i < MB; i++)                                                      \
        for (int v = 0; v < NV; v++) acc[i][v] = (S(vec)){0}
#define FNN_TILE_STORE(MB, NV)                                                        \
    for (int i = 0; i < MB; i++)                                                      \
        for (int v = 0; v < NV; v++) *(S(vec) *)(c + i * ldc + v * FNN_VL) = acc[i][v]

/* c[i ldc + 0 .. NV VL) = sum_p a[i lda + p] (row p of b)[0 .. NV VL), i < MB. Rows
 * evenly spaced (kh = kw = 1: im2col columns, a transposed weight matrix) take a single
 * loop: the general walk's nested loops of one trip each cost a third of the speed on
 * a dense layer's product. */
#define FNN_GEMM_TILE(MB, NV)                                                                 \
    static inline __attribute__((always_inline)) void S(gemm_tile_##MB##_##NV)(              \
        ptrdiff_t P, const T *a, ptrdiff_t lda, const T *b, fnn_rows r, T *c, ptrdiff_t ldc)  \
    {                                                                                         \
        FNN_TILE_ZERO(MB, NV);                                                                \
        ptrdiff_t p = 0;                                                                      \
        if (r.kh == 1 && r.kw == 1)                                                           \
            for (; p < P; p++) FNN_TILE_STEP(MB, NV, b + p * r.sc);                           \
        else                                                                                  \
            for (const T *bc = b; p < P; bc += r.sc)                                          \
                for (ptrdiff_t ki = 0; ki < r.kh; ki++)                                       \
                    for (ptrdiff_t kj = 0; kj < r.kw; kj++, p++)                              \
                        FNN_TILE_STEP(MB, NV, bc + ki * r.si + kj * r.sj);                    \
        FNN_TILE_STORE(MB, NV);                                                               \
    }

FNN_TILES(FNN_GEMM_TILE)
#undef FNN_GEMM_TILE

/* As gemm_tile, b's rows from an offset table (fnn_taps). */
#define FNN_GEMM_TAPS_TILE(MB, NV)                                                            \
    static inline __attribute__((always_inline)) void S(gemm_taps_tile_##MB##_##NV)(         \
        ptrdiff_t P, const T *a, ptrdiff_t lda, const T *b, fnn_taps r, T *c, ptrdiff_t ldc)  \
    {                                                                                         \
        FNN_TILE_ZERO(MB, NV);                                                                \
        for (ptrdiff_t p = 0; p < P; p++) FNN_TILE_STEP(MB, NV, b + r.off[p]);                \
        FNN_TILE_STORE(MB, NV);                                                               \
    }

FNN_TILES(FNN_GEMM_TAPS_TILE)
/* 8 rows by up to 3 vectors: 24 accumulators, for AVX-512's 32 vector registers */
#define FNN_WIDE_TILES(X) X(8, 1) X(8, 2) X(8, 3)
FNN_WIDE_TILES(FNN_GEMM_TAPS_TILE)
#undef FNN_GEMM_TAPS_TILE
#undef FNN_TILE_STEP
#undef FNN_TILE_ZERO
#undef FNN_TILE_STORE

/* The body of tiled_gemm, tiled_gemm_taps and tiled_gemm_taps_wide: c (m, n) = a (m, P)
 * b (P, n), b's rows read from `r` in whole vectors (the rows have room for them):
 * column tiles of 3 vectors outside, row blocks of RB (4, or 8 with the WIDE cases)
 * inside, then of 4, so a tile of b stays in L1 while it meets every row of a. The last
 * partial tile goes through a buffer so that c gets exactly n columns. CASE(MB, NV): the
 * switch's case calling the MB x NV tile; WIDE: the 8-row cases, or nothing. */
#define FNN_TILED_GEMM(CASE, RB, WIDE)                                                      \
    T buf[8 * 3 * FNN_VL];                                                                  \
    for (ptrdiff_t j = 0; j < n; j += 3 * FNN_VL) {                                         \
        ptrdiff_t w = n - j < 3 * FNN_VL ? n - j : 3 * FNN_VL, nv = (w + FNN_VL - 1) / FNN_VL; \
        int whole = w == nv * FNN_VL;                                                       \
        for (ptrdiff_t i = 0, mb; i < m; i += mb) {                                         \
            mb = m - i >= (RB) ? (RB) : m - i < 4 ? m - i : 4;                              \
            T *dst = whole ? c + i * ldc + j : buf;                                         \
            ptrdiff_t ldd = whole ? ldc : 3 * FNN_VL;                                       \
            switch (mb * 4 + nv) { FNN_TILES(CASE) WIDE }                                   \
            if (!whole)                                                                     \
                for (ptrdiff_t k = 0; k < mb; k++)                                          \
                    memcpy(c + (i + k) * ldc + j, buf + k * ldd, (size_t)w * sizeof(T));    \
        }                                                                                   \
    }
#define FNN_GEMM_CASE(MB, NV)                                                          \
    case MB * 4 + NV:                                                                  \
        S(gemm_tile_##MB##_##NV)(P, a + i * lda, lda, b + j, r, dst, ldd);             \
        break;
#define FNN_GEMM_TAPS_CASE(MB, NV)                                                     \
    case MB * 4 + NV:                                                                  \
        S(gemm_taps_tile_##MB##_##NV)(P, a + i * lda, lda, b + j, r, dst, ldd);        \
        break;

/* c (m, n) = a (m, P) b (P, n), b's rows read from `r` (FNN_TILED_GEMM). */
static FNN_CLONES void S(tiled_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t P, const T *a,
                                     ptrdiff_t lda, const T *b, fnn_rows r, T *c,
                                     ptrdiff_t ldc)
{
    FNN_TILED_GEMM(FNN_GEMM_CASE, 4, )
}

/* tiled_gemm with b's rows read through an offset table (fnn_taps). */
static FNN_CLONES void S(tiled_gemm_taps)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t P, const T *a,
                                          ptrdiff_t lda, const T *b, fnn_taps r, T *c,
                                          ptrdiff_t ldc)
{
    FNN_TILED_GEMM(FNN_GEMM_TAPS_CASE, 4, )
}

/* tiled_gemm_taps with row blocks of 8 where `wide` (AVX-512's 32 vector registers hold
 * the 24 accumulators; on AVX2's 16 they would spill): a tile of b then meets 8 rows
 * of a per load instead of 4, which halves the reads of b (from L2 where the weights
 * and the tile's rows of b exceed L1: the 3x3 stride-2 convolutions' 32 x 144 and
 * 64 x 288 weights). Every element of c is summed over p in the same order as by
 * tiled_gemm_taps. */
static FNN_CLONES_AVX512 void S(tiled_gemm_taps_wide)(int wide, ptrdiff_t m, ptrdiff_t n,
                                                      ptrdiff_t P, const T *a, ptrdiff_t lda,
                                                      const T *b, fnn_taps r, T *c,
                                                      ptrdiff_t ldc)
{
    ptrdiff_t rb = wide ? 8 : 4;
    FNN_TILED_GEMM(FNN_GEMM_TAPS_CASE, rb, FNN_WIDE_TILES(FNN_GEMM_TAPS_CASE))
}

#undef FNN_WIDE_TILES
#undef FNN_TILED_GEMM
#undef FNN_GEMM_CASE
#undef FNN_GEMM_TAPS_CASE
