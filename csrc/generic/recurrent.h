/* Generic body of recurrent.c; see instantiate.h for T and S(), recurrent.h for the
 * layout. Gate formulas are torch's (torch.nn.LSTM, GRU, RNN):
 *   LSTM  i, f, o = sigmoid(.), g = tanh(.), c' = f c + i g, h' = o tanh(c')
 *   GRU   r, z = sigmoid(.), n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
 *         h' = n + z (h - n)  [= (1 - z) n + z h]
 *   RNN   h' = tanh(.) or relu(.)
 * where (.) is W_i* x + b_i* + W_h* h + b_h*. */

/* ---- one sequence, one step: fused gate nonlinearities and state update ---------- */

/* n units of one sequence: g + k gs holds gate k's pre-activations without bias (gates
 * i, f, g, o), which become the activations; bias + k H gate k's bias. */
static inline __attribute__((always_inline)) void S(lstm_cell)(ptrdiff_t n, ptrdiff_t gs,
                                                             T *restrict g, ptrdiff_t H,
                                                             const T *restrict bias,
                                                             const T *restrict cp,
                                                             T *restrict hnext,
                                                             T *restrict cnext)
{
#pragma omp simd
    for (ptrdiff_t j = 0; j < n; j++) {
        T i = S(fnn_rnn_sigmoid)(g[j] + bias[j]);
        T f = S(fnn_rnn_sigmoid)(g[gs + j] + bias[H + j]);
        T gg = S(fnn_rnn_tanh)(g[2 * gs + j] + bias[2 * H + j]);
        T o = S(fnn_rnn_sigmoid)(g[3 * gs + j] + bias[3 * H + j]);
        T c = f * cp[j] + i * gg;
        g[j] = i;
        g[gs + j] = f;
        g[2 * gs + j] = gg;
        g[3 * gs + j] = o;
        cnext[j] = c;
        hnext[j] = o * S(fnn_rnn_tanh)(c);
    }
}

/* One row of gates (i, f, g, o side by side). */
static FNN_CLONES_AVX512 void S(lstm_row_forward)(ptrdiff_t H, T *restrict g,
                                                  const T *restrict bias, const T *restrict cp,
                                                  T *restrict hnext, T *restrict cnext)
{
    S(lstm_cell)(H, H, g, H, bias, cp, hnext, cnext);
}

/* One GRU unit from its pre-activations with biases: ar, az (x and h sides summed), ax
 * = W_in x + b_in, ah = W_hn h + b_hn; hp the state. Returns h' and sets the gates
 * r, z, n and ah (what the backward reads). The float32 sigmoid and tanh are the
 * rational ones (vmath.h), as the LSTM's. */
static inline __attribute__((always_inline)) T S(gru_unit)(T ar, T az, T ax, T ah, T hp,
                                                         T *restrict g, ptrdiff_t gs)
{
    T r = S(fnn_rnn_sigmoid)(ar), z = S(fnn_rnn_sigmoid)(az);
    T n = S(fnn_rnn_tanh)(ax + r * ah);
    g[0] = r;
    g[gs] = z;
    g[2 * gs] = n;
    g[3 * gs] = ah;
    return n + z * (hp - n);
}

/* g: the products of r and z (over x and h) and n over x (columns [0, 3H)); ghn: n's
 * over h, W_hn h. g becomes r, z, n, W_hn h + b_hn. */
static FNN_CLONES_AVX512 void S(gru_row_forward)(ptrdiff_t H, T *restrict g,
                                                const T *restrict ghn, const T *restrict bias,
                                                const T *restrict hp, T *restrict hnext)
{
#pragma omp simd
    for (ptrdiff_t j = 0; j < H; j++)
        hnext[j] = S(gru_unit)(g[j] + bias[j], g[H + j] + bias[H + j],
                               g[2 * H + j] + bias[2 * H + j], ghn[j] + bias[3 * H + j], hp[j],
                               g + j, H);
}

/* g: the pre-activation without bias; it becomes h. */
static FNN_CLONES_AVX512 void S(rnn_row_forward)(ptrdiff_t H, int relu, T *restrict g,
                                          const T *restrict bias, T *restrict hnext)
{
    if (relu) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < H; j++) hnext[j] = g[j] = FNN_F_RELU(g[j] + bias[j], 0, 0);
    } else {
#pragma omp simd
        for (ptrdiff_t j = 0; j < H; j++) hnext[j] = g[j] = TANH(g[j] + bias[j]);
    }
}

/* ---- one sequence, one step back: gate derivatives ---------------------------------
 * dh: in, the gradient reaching h' from later steps; out, its part that does not go
 * through the recurrent GEMM (which the caller then adds). dc likewise for the cell. */

static FNN_CLONES_AVX512 void S(lstm_row_backward)(ptrdiff_t H, const T *restrict g,
                                            const T *restrict cp, T *restrict dh,
                                            T *restrict dc, T *restrict dg)
{
#pragma omp simd
    for (ptrdiff_t j = 0; j < H; j++) {
        T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
        /* tanh(c'), recomputed rather than stored, by the forward's own function */
        T tc = S(fnn_rnn_tanh)(f * cp[j] + i * gg);
        T dhj = dh[j];
        T dcj = dc[j] + dhj * o * ((T)1 - tc * tc);
        dg[j] = dcj * gg * i * ((T)1 - i);
        dg[H + j] = dcj * cp[j] * f * ((T)1 - f);
        dg[2 * H + j] = dcj * i * ((T)1 - gg * gg);
        dg[3 * H + j] = dhj * tc * o * ((T)1 - o);
        dc[j] = dcj * f;
        dh[j] = 0;
    }
}

/* dg: d(r, z pre-activations), d(W_hn h + b_hn), d(n pre-activation) = the gradient of
 * W_in x + b_in: columns [0, 3H) are the hidden side's gate gradients, [0, 2H) and
 * [3H, 4H) the input side's. n units of one sequence, gate k's columns at g + k gs and
 * dg + k gs. */
static inline __attribute__((always_inline)) void S(gru_cell_backward)(ptrdiff_t n, ptrdiff_t gs,
                                                                     const T *restrict g,
                                                                     const T *restrict hp,
                                                                     T *restrict dh,
                                                                     T *restrict dg)
{
#pragma omp simd
    for (ptrdiff_t j = 0; j < n; j++) {
        T r = g[j], z = g[gs + j], nn = g[2 * gs + j], hn = g[3 * gs + j];
        T dhj = dh[j];
        T dn = dhj * ((T)1 - z) * ((T)1 - nn * nn);
        T dz = dhj * (hp[j] - nn) * z * ((T)1 - z);
        T dr = dn * hn * r * ((T)1 - r);
        dg[j] = dr;
        dg[gs + j] = dz;
        dg[2 * gs + j] = dn * r;
        dg[3 * gs + j] = dn;
        dh[j] = dhj * z;
    }
}

static FNN_CLONES_AVX512 void S(gru_row_backward)(ptrdiff_t H, const T *restrict g,
                                           const T *restrict hp, T *restrict dh,
                                           T *restrict dg)
{
    S(gru_cell_backward)(H, H, g, hp, dh, dg);
}

static FNN_CLONES_AVX512 void S(rnn_row_backward)(ptrdiff_t H, int relu, const T *restrict g,
                                           T *restrict dh, T *restrict dg)
{
    if (relu) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < H; j++) {
            dg[j] = dh[j] * FNN_D_RELU(0, g[j], 0, 0);
            dh[j] = 0;
        }
    } else {
#pragma omp simd
        for (ptrdiff_t j = 0; j < H; j++) {
            dg[j] = dh[j] * FNN_D_TANH(0, g[j], 0, 0);
            dh[j] = 0;
        }
    }
}

static void S(add_row)(ptrdiff_t n, T *restrict y, const T *restrict x)
{
#pragma omp simd
    for (ptrdiff_t j = 0; j < n; j++) y[j] += x[j];
}

/* C (m, n) = A (m, k) B (k, n) + beta C, row-major, as products of at most
 * FNN_RNN_BLOCK_MACS multiply-adds (recurrent.c): rows in blocks of FNN_RNN_BLOCK_ROWS,
 * then the longer of n and k cut evenly into at most FNN_RNN_BLOCK_PARTS parts (a
 * product that needs more runs whole: at that size the packed path is efficient and
 * thin blocks would repack A). The cut depends on the shape only. */
static void S(rnn_gemm)(S(fnn_blas_gemm) blas, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                        const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb, double beta,
                        T *c, ptrdiff_t ldc)
{
    ptrdiff_t mb = m < FNN_RNN_BLOCK_ROWS ? m : FNN_RNN_BLOCK_ROWS;
    ptrdiff_t parts = (mb * n * k + FNN_RNN_BLOCK_MACS - 1) / FNN_RNN_BLOCK_MACS;
    if (parts > FNN_RNN_BLOCK_PARTS) parts = 1;
    ptrdiff_t nb = n >= k ? fnn_rnn_cut(n, parts) : n, kb = n >= k ? k : fnn_rnn_cut(k, parts);
    for (ptrdiff_t i = 0; i < m; i += mb) {
        ptrdiff_t mi = m - i < mb ? m - i : mb;
        for (ptrdiff_t j = 0; j < n; j += nb) {
            ptrdiff_t nj = n - j < nb ? n - j : nb;
            for (ptrdiff_t l = 0; l < k; l += kb) {
                ptrdiff_t kl = k - l < kb ? k - l : kb;
                S(fnn_gemm)(blas, 0, 0, mi, nj, kl, 1.0, a + i * lda + l, lda,
                            b + l * ldb + j, ldb, l == 0 ? beta : 1.0, c + i * ldc + j, ldc);
            }
        }
    }
}

/* ---- register tiles ----------------------------------------------------------------
 * Products of fastnn's own (BLAS's are timed in the GEMM-only run): tiles of up to 8
 * rows by a panel of FNN_RNN_PANEL columns, two 64-byte vectors, held in registers. */
typedef T S(wvec) __attribute__((vector_size(64), aligned(sizeof(T)), may_alias));
#define FNN_RNN_VL ((ptrdiff_t)(64 / sizeof(T)))
#define FNN_RNN_PANEL (2 * FNN_RNN_VL)

/* acc[i nv + v] += a[i lda] w[v FNN_RNN_VL ..] for i < mb, v < nv: a rank-one update of
 * a tile of nv vectors by mb rows (inlined with constant mb and nv, so that acc stays
 * in registers). */
static inline __attribute__((always_inline)) void S(rank1)(int mb, int nv, S(wvec) *acc,
                                                          const T *a, ptrdiff_t lda, const T *w)
{
    S(wvec) wv[4];
    for (int v = 0; v < nv; v++) wv[v] = *(const S(wvec) *)(w + v * FNN_RNN_VL);
    for (int i = 0; i < mb; i++) {
        T av = a[i * lda];
        for (int v = 0; v < nv; v++) acc[i * nv + v] += av * wv[v];
    }
}

/* c[i ldc + 0 .. NV FNN_RNN_VL) = (c[..] with add) + sum_p a[i lda + p] w[p ldw + ..]
 * over p < k1, plus sum_p h[i ldh + p] w[(k1 + p) ldw + ..] over p < k2, i < MB. */
#define FNN_RNN_STEP_TILE(MB, NV)                                                             \
    static inline __attribute__((always_inline)) void S(step_tile_##MB##x##NV)(              \
        ptrdiff_t k1, const T *a, ptrdiff_t lda, ptrdiff_t k2, const T *h, ptrdiff_t ldh,      \
        const T *w, ptrdiff_t ldw, T *c, ptrdiff_t ldc, int add)                               \
    {                                                                                         \
        S(wvec) acc[MB * NV];                                                                 \
        for (int i = 0; i < MB; i++)                                                          \
            for (int v = 0; v < NV; v++)                                                      \
                acc[i * NV + v] = add ? *(const S(wvec) *)(c + i * ldc + v * FNN_RNN_VL)      \
                                      : (S(wvec)){0};                                         \
        for (ptrdiff_t p = 0; p < k1; p++) S(rank1)(MB, NV, acc, a + p, lda, w + p * ldw);    \
        for (ptrdiff_t p = 0; p < k2; p++)                                                    \
            S(rank1)(MB, NV, acc, h + p, ldh, w + (k1 + p) * ldw);                            \
        for (int i = 0; i < MB; i++)                                                          \
            for (int v = 0; v < NV; v++)                                                      \
                *(S(wvec) *)(c + i * ldc + v * FNN_RNN_VL) = acc[i * NV + v];                 \
    }
FNN_RNN_STEP_TILE(8, 2)
FNN_RNN_STEP_TILE(4, 2)
FNN_RNN_STEP_TILE(1, 2)
FNN_RNN_STEP_TILE(4, 4) /* the LSTM's groups of four gates */
FNN_RNN_STEP_TILE(1, 4)
#undef FNN_RNN_STEP_TILE

/* c (m, n) = (c with add) + a (m, k1) w[0, k1) + h (m, k2) w[k1, k1 + k2), rows of w
 * ldw apart, n a multiple of FNN_RNN_PANEL: one step's input and recurrent products in
 * one pass, with no copy of either operand. Column panels outside, tiles of 8 rows
 * inside, so a panel of w stays in L1 while it meets every row. Inlined with a
 * constant add (step_gemm, step_gemm_add): a variable one costs the tiles 10%. */
static inline __attribute__((always_inline)) void S(step_gemm_body)(
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k1, const T *a, ptrdiff_t lda, ptrdiff_t k2, const T *h,
    ptrdiff_t ldh, const T *w, ptrdiff_t ldw, T *c, ptrdiff_t ldc, int add)
{
    for (ptrdiff_t j = 0; j < n; j += FNN_RNN_PANEL) {
        ptrdiff_t i = 0;
        for (; i + 8 <= m; i += 8)
            S(step_tile_8x2)(k1, a + i * lda, lda, k2, h + i * ldh, ldh, w + j, ldw,
                               c + i * ldc + j, ldc, add);
        for (; i + 4 <= m; i += 4)
            S(step_tile_4x2)(k1, a + i * lda, lda, k2, h + i * ldh, ldh, w + j, ldw,
                               c + i * ldc + j, ldc, add);
        for (; i < m; i++)
            S(step_tile_1x2)(k1, a + i * lda, lda, k2, h + i * ldh, ldh, w + j, ldw,
                               c + i * ldc + j, ldc, add);
    }
}

static FNN_CLONES_AVX512 void S(step_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k1, const T *a,
                                          ptrdiff_t lda, ptrdiff_t k2, const T *h,
                                          ptrdiff_t ldh, const T *w, ptrdiff_t ldw, T *c,
                                          ptrdiff_t ldc)
{
    S(step_gemm_body)(m, n, k1, a, lda, k2, h, ldh, w, ldw, c, ldc, 0);
}

static FNN_CLONES_AVX512 void S(step_gemm_add)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k1,
                                              const T *a, ptrdiff_t lda, ptrdiff_t k2,
                                              const T *h, ptrdiff_t ldh, const T *w,
                                              ptrdiff_t ldw, T *c, ptrdiff_t ldc)
{
    S(step_gemm_body)(m, n, k1, a, lda, k2, h, ldh, w, ldw, c, ldc, 1);
}

/* Fastnn's tiles compute this layer's per-step products (else BLAS does). */
static int S(rnn_own_tiles)(const fnn_rnn_dims *d)
{
    return !d->gemm_only && fnn_rnn_weight_rows(d) % FNN_RNN_PANEL == 0 && fnn_rnn_tiles();
}

/* ---- LSTM: the cell update in the tiles' epilogue --------------------------------
 * When the hidden size is a multiple of a vector (FNN_RNN_VL), the LSTM's gate columns
 * in w_t are interleaved (fnn_rnn_forward): group q of 4 vectors holds the units
 * [q VL, (q + 1) VL) of the gates i, f, g, o, one vector each. A tile of rows by one
 * group then ends holding all four gates of its rows' units, and the cell updates c
 * and h from it while it is in L1, a whole vector at a time: the step's gates go to
 * memory only for a backward. */
#define FNN_RNN_GROUP (4 * FNN_RNN_VL)

static int S(lstm_fused)(const fnn_rnn_dims *d)
{
    return d->mode == FNN_RNN_LSTM && d->hidden % FNN_RNN_VL == 0 && S(rnn_own_tiles)(d);
}

/* The GRU likewise, on groups of 3 vectors (r, z, n): a tile of rows by one group keeps
 * four sums, r and z over x and h, and n's apart over x and over h (W_hn h is gated by
 * r), and updates h from them. In inference only: when a backward follows, storing the
 * step's gates from the epilogue stalls the tiles (the forward 7% slower here), and
 * the separate pass, whose products sum in the same order (rnn_forward_rows), is
 * faster; both give the same bits. */
#define FNN_RNN_GROUP3 (3 * FNN_RNN_VL)

static int S(gru_fused)(const fnn_rnn_dims *d)
{
    return d->mode == FNN_RNN_GRU && d->one_step && d->hidden % FNN_RNN_VL == 0 &&
           S(rnn_own_tiles)(d);
}

/* Column of w_t for row j of a weight of `gates` blocks of H rows (gates stacked) when
 * interleaved, `gates` vectors a group. */
static inline ptrdiff_t S(gate_column)(ptrdiff_t j, ptrdiff_t H, int gates)
{
    ptrdiff_t k = j / H, u = j % H;
    return u / FNN_RNN_VL * gates * FNN_RNN_VL + k * FNN_RNN_VL + u % FNN_RNN_VL;
}

/* What a step reads and writes besides its products (the arrays of rnn_forward_rows). */
struct S(step_io) {
    const fnn_rnn_dims *d;
    ptrdiff_t t, s; /* time, and the number of the step */
    const T *bias;
    const int64_t *lengths;
    T *gates, *hprev, *cprev, *y, *hn, *cn;
    ptrdiff_t ldy;
};

/* Sequence n's rows at the step, from column u: the state h, c (LSTM) it starts from,
 * where it leaves it (hnext, cnext) and its output (y, or NULL). */
struct S(step_rows) {
    T *h, *c, *hnext, *cnext, *y;
};

/* Fills r; at a padded step (past the sequence's length) passes the state's columns
 * [u, u + len) through, outputs zeros there and returns 0. */
static inline __attribute__((always_inline)) int S(step_rows)(const struct S(step_io) *io,
                                                            ptrdiff_t n, ptrdiff_t u,
                                                            ptrdiff_t len,
                                                            struct S(step_rows) *r)
{
    const fnn_rnn_dims *d = io->d;
    ptrdiff_t H = d->hidden, t = io->t, s = io->s, dt = d->reverse ? -1 : 1;
    int last = s == d->steps - 1, lstm = d->mode == FNN_RNN_LSTM;
    ptrdiff_t hr = fnn_rnn_srow(d, t, s, n, 1) * H + u;
    ptrdiff_t rn = last ? n * H + u : fnn_rnn_srow(d, t + dt, s + 1, n, 1) * H + u;
    size_t bytes = (size_t)len * sizeof(T);
    r->h = io->hprev + hr;
    r->c = lstm ? io->cprev + hr : NULL;
    r->hnext = (last ? io->hn : io->hprev) + rn;
    r->cnext = !lstm ? NULL : (last ? io->cn : io->cprev) + rn;
    r->y = io->y ? io->y + fnn_rnn_row(d, t, n) * io->ldy + u : NULL;
    if (fnn_rnn_active(io->lengths, t, n)) return 1;
    memcpy(r->hnext, r->h, bytes);
    if (lstm) memcpy(r->cnext, r->c, bytes);
    if (r->y) memset(r->y, 0, bytes);
    return 0;
}

/* Sequences n0 .. n0 + mb, units [u, u + VL): buf (mb, FNN_RNN_GROUP) holds their gates'
 * products, interleaved: LSTM i, f, g, o; GRU (gru) r, z, n over x, n over h (gru_tile).
 * They become the gates in the backward's order (i, f, g, o or r, z, n, W_hn h + b_hn). */
static inline __attribute__((always_inline)) void S(tile_cells)(const struct S(step_io) *io,
                                                              ptrdiff_t n0, int mb, ptrdiff_t u,
                                                              T *buf, int gru)
{
    const fnn_rnn_dims *d = io->d;
    ptrdiff_t H = d->hidden, U = FNN_RNN_VL;
    const T *b = io->bias + u;
    size_t bytes = (size_t)U * sizeof(T);
    for (int i = 0; i < mb; i++) {
        struct S(step_rows) r;
        T *g = buf + i * FNN_RNN_GROUP;
        if (!S(step_rows)(io, n0 + i, u, U, &r)) continue;
        if (gru) {
#pragma omp simd
            for (ptrdiff_t j = 0; j < U; j++)
                r.hnext[j] = S(gru_unit)(g[j] + b[j], g[U + j] + b[H + j],
                                         g[2 * U + j] + b[2 * H + j], g[3 * U + j] + b[3 * H + j],
                                         r.h[j], g + j, U);
        } else {
            S(lstm_cell)(U, U, g, H, b, r.c, r.hnext, r.cnext);
        }
        if (r.y) memcpy(r.y, r.hnext, bytes);
        if (!d->one_step) /* for the backward, in its layout (gates side by side) */
            for (int k = 0; k < 4; k++)
                memcpy(io->gates + fnn_rnn_row(d, io->t, n0 + i) * 4 * H + k * H + u, g + k * U,
                       bytes);
    }
}

/* One step of sequences n0 .. n0 + m: the products of a (m, k1) and h (m, k2) with the
 * interleaved w (k1 + k2, 4H) group by group, each tile's cells updated from it. */
static FNN_CLONES_AVX512 void S(lstm_step)(const struct S(step_io) *io, ptrdiff_t n0, ptrdiff_t m,
                                          ptrdiff_t k1, const T *a, ptrdiff_t lda,
                                          ptrdiff_t k2, const T *h, ptrdiff_t ldh,
                                          const T *w)
{
    ptrdiff_t W = 4 * io->d->hidden, P = FNN_RNN_GROUP;
    T buf[4 * FNN_RNN_GROUP] __attribute__((aligned(64)));
    for (ptrdiff_t j = 0; j < W; j += P) {
        ptrdiff_t i = 0, u = j / 4;
        for (; i + 4 <= m; i += 4) {
            S(step_tile_4x4)(k1, a + i * lda, lda, k2, h + i * ldh, ldh, w + j, W, buf, P, 0);
            S(tile_cells)(io, n0 + i, 4, u, buf, 0);
        }
        for (; i < m; i++) {
            S(step_tile_1x4)(k1, a + i * lda, lda, k2, h + i * ldh, ldh, w + j, W, buf, P, 0);
            S(tile_cells)(io, n0 + i, 1, u, buf, 0);
        }
    }
}

/* c[i ldc + ..] for i < MB, four vectors: r and z summed over a (k1 columns) and h
 * (k2), then n's sums over a and over h apart, from the interleaved w (3 vectors a row:
 * r, z, n). */
#define FNN_RNN_GRU_TILE(MB)                                                                 \
    static inline __attribute__((always_inline)) void S(gru_tile_##MB)(                     \
        ptrdiff_t k1, const T *a, ptrdiff_t lda, ptrdiff_t k2, const T *h, ptrdiff_t ldh,     \
        const T *w, ptrdiff_t ldw, T *c, ptrdiff_t ldc)                                       \
    {                                                                                        \
        S(wvec) rz[MB * 2], nx[MB], nh[MB];                                                  \
        for (int i = 0; i < MB; i++) rz[2 * i] = rz[2 * i + 1] = nx[i] = nh[i] = (S(wvec)){0}; \
        for (ptrdiff_t p = 0; p < k1; p++) {                                                 \
            S(rank1)(MB, 2, rz, a + p, lda, w + p * ldw);                                    \
            S(rank1)(MB, 1, nx, a + p, lda, w + p * ldw + 2 * FNN_RNN_VL);                    \
        }                                                                                    \
        for (ptrdiff_t p = 0; p < k2; p++) {                                                 \
            S(rank1)(MB, 2, rz, h + p, ldh, w + (k1 + p) * ldw);                             \
            S(rank1)(MB, 1, nh, h + p, ldh, w + (k1 + p) * ldw + 2 * FNN_RNN_VL);             \
        }                                                                                    \
        for (int i = 0; i < MB; i++) {                                                       \
            S(wvec) *ci = (S(wvec) *)(c + i * ldc);                                          \
            ci[0] = rz[2 * i];                                                               \
            ci[1] = rz[2 * i + 1];                                                           \
            ci[2] = nx[i];                                                                   \
            ci[3] = nh[i];                                                                   \
        }                                                                                    \
    }
FNN_RNN_GRU_TILE(4)
FNN_RNN_GRU_TILE(1)
#undef FNN_RNN_GRU_TILE

/* One step of sequences n0 .. n0 + m: the products of a (m, k1) and h (m, k2) with the
 * interleaved w (k1 + k2, 3H) group by group, each tile's units updated from it. */
static FNN_CLONES_AVX512 void S(gru_step)(const struct S(step_io) *io, ptrdiff_t n0, ptrdiff_t m,
                                         ptrdiff_t k1, const T *a, ptrdiff_t lda, ptrdiff_t k2,
                                         const T *h, ptrdiff_t ldh, const T *w)
{
    ptrdiff_t W = 3 * io->d->hidden, P = FNN_RNN_GROUP;
    T buf[4 * FNN_RNN_GROUP] __attribute__((aligned(64)));
    for (ptrdiff_t j = 0; j < W; j += FNN_RNN_GROUP3) {
        ptrdiff_t i = 0, u = j / 3;
        for (; i + 4 <= m; i += 4) {
            S(gru_tile_4)(k1, a + i * lda, lda, k2, h + i * ldh, ldh, w + j, W, buf, P);
            S(tile_cells)(io, n0 + i, 4, u, buf, 1);
        }
        for (; i < m; i++) {
            S(gru_tile_1)(k1, a + i * lda, lda, k2, h + i * ldh, ldh, w + j, W, buf, P);
            S(tile_cells)(io, n0 + i, 1, u, buf, 1);
        }
    }
}

/* ---- sequences [lo, hi) over all steps -------------------------------------------
 * Each step runs block by block of FNN_RNN_BLOCK_ROWS sequences: the block's products,
 * then its gate pass while they are in cache (or, for the LSTM on the tiles, both in
 * one pass: lstm_step). */

static void S(rnn_forward_rows)(S(fnn_blas_gemm) blas, const fnn_rnn_dims *d, ptrdiff_t lo,
                                ptrdiff_t hi, const T *x, ptrdiff_t ldx, const T *w_t,
                                const T *bias, const T *h0, const T *c0,
                                const int64_t *lengths, T *gates, T *hprev, T *cprev, T *gh,
                                T *y, ptrdiff_t ldy, T *hn, T *cn)
{
    ptrdiff_t Tn = d->steps, H = d->hidden, G = fnn_rnn_gate_width(d), W = fnn_rnn_weight_rows(d);
    const T *w_hh_t = w_t + d->inputs * W;
    ptrdiff_t rs = fnn_rnn_row_stride(d), ss = d->one_step ? 1 : rs; /* x, y; the rest */
    ptrdiff_t t0 = d->reverse ? Tn - 1 : 0, dt = d->reverse ? -1 : 1;
    int lstm = d->mode == FNN_RNN_LSTM, gru = d->mode == FNN_RNN_GRU;
    int own = S(rnn_own_tiles)(d), fused = S(lstm_fused)(d), gru_fused = S(gru_fused)(d);
    struct S(step_io) io = {d, 0, 0, bias, lengths, gates, hprev, cprev, y, hn, cn, ldy};
    size_t hbytes = (size_t)H * sizeof(T);
    for (ptrdiff_t n = lo; n < hi; n++) {
        ptrdiff_t r = fnn_rnn_srow(d, t0, 0, n, 1);
        if (h0) memcpy(hprev + r * H, h0 + n * H, hbytes);
        else memset(hprev + r * H, 0, hbytes);
        if (lstm && c0) memcpy(cprev + r * H, c0 + n * H, hbytes);
        else if (lstm) memset(cprev + r * H, 0, hbytes);
    }
    for (ptrdiff_t s = 0; s < Tn; s++) {
        ptrdiff_t t = t0 + s * dt;
        io.t = t;
        io.s = s;
        for (ptrdiff_t b0 = lo; b0 < hi; b0 += FNN_RNN_BLOCK_ROWS) {
            ptrdiff_t b1 = hi - b0 < FNN_RNN_BLOCK_ROWS ? hi : b0 + FNN_RNN_BLOCK_ROWS;
            T *g0 = gates + fnn_rnn_srow(d, t, s, b0, 0) * G;
            const T *hb = hprev + fnn_rnn_srow(d, t, s, b0, 1) * H;
            const T *xb = x + fnn_rnn_row(d, t, b0) * ldx;
            ptrdiff_t kh = s > 0 || h0 ? H : 0; /* no recurrent product from a zero state */
            if (fused) { /* products and cells in one pass */
                S(lstm_step)(&io, b0, b1 - b0, d->inputs, xb, rs * ldx, kh, hb, ss * H, w_t);
                continue;
            }
            if (gru_fused) {
                S(gru_step)(&io, b0, b1 - b0, d->inputs, xb, rs * ldx, kh, hb, ss * H, w_t);
                continue;
            }
            /* the input and recurrent products: own tiles when the gates are whole
             * panels on AVX-512, BLAS (as in the GEMM-only run) otherwise. GRU: r and z
             * (columns [0, 2H)) summed over x and h, n's products apart (x in the gates,
             * h in gh), each sum in the order of gru_step's, which gives the same bits */
            ptrdiff_t m = b1 - b0, I = d->inputs, H2 = 2 * H;
            T *ghn = gh + b0 * W + H2;
            if (own && !gru) { /* RNN, or an LSTM whose H is not whole vectors */
                S(step_gemm)(m, W, I, xb, rs * ldx, kh, hb, ss * H, w_t, W, g0, ss * G);
            } else if (own) {
                S(step_gemm)(m, H2, I, xb, rs * ldx, kh, hb, ss * H, w_t, W, g0, ss * G);
                S(step_gemm)(m, H, I, xb, rs * ldx, 0, NULL, 0, w_t + H2, W, g0 + H2, ss * G);
                S(step_gemm)(m, H, 0, NULL, 0, kh, hb, ss * H, w_hh_t + H2, W, ghn, W);
            } else {
                S(rnn_gemm)(blas, m, W, I, xb, rs * ldx, w_t, W, 0.0, g0, ss * G);
                if (kh && gru) {
                    S(rnn_gemm)(blas, m, H2, H, hb, ss * H, w_hh_t, W, 1.0, g0, ss * G);
                    S(rnn_gemm)(blas, m, H, H, hb, ss * H, w_hh_t + H2, W, 0.0, ghn, W);
                } else if (kh) {
                    S(rnn_gemm)(blas, m, W, H, hb, ss * H, w_hh_t, W, 1.0, g0, ss * G);
                } else if (gru) {
                    for (ptrdiff_t i = 0; i < m; i++) memset(ghn + i * W, 0, hbytes);
                }
            }
            /* the block after (this step's next, or the next step's first): in training
             * its rows of gates, y and the state are written for the first time, and
             * fetching them for writing while this block runs saves the products and
             * this pass the stalls on them */
            ptrdiff_t nt = t, nb = b1, nm = hi - b1;
            if (nm == 0 && s + 1 < Tn) nt = t + dt, nb = lo, nm = hi - lo;
            if (d->one_step || d->gemm_only) nm = 0;
            for (ptrdiff_t n = b0; n < b1 && !d->gemm_only; n++) {
                struct S(step_rows) r;
                T *g = gates + fnn_rnn_srow(d, t, s, n, 0) * G;
                if (n - b0 < nm) {
                    ptrdiff_t rn = fnn_rnn_row(d, nt, nb + n - b0);
                    for (ptrdiff_t j = 0; j < G; j += FNN_RNN_VL)
                        __builtin_prefetch(gates + rn * G + j, 1, 2);
                    for (ptrdiff_t j = 0; j < H; j += FNN_RNN_VL) {
                        if (y) __builtin_prefetch(y + rn * ldy + j, 1, 2);
                        if (nt + dt >= 0 && nt + dt < Tn)
                            __builtin_prefetch(hprev + fnn_rnn_row(d, nt + dt, nb + n - b0) * H + j,
                                               1, 2);
                    }
                }
                if (!S(step_rows)(&io, n, 0, H, &r)) continue;
                if (lstm) S(lstm_row_forward)(H, g, bias, r.c, r.hnext, r.cnext);
                else if (gru) S(gru_row_forward)(H, g, gh + n * W + 2 * H, bias, r.h, r.hnext);
                else S(rnn_row_forward)(H, d->mode == FNN_RNN_RELU, g, bias, r.hnext);
                if (r.y) memcpy(r.y, r.hnext, hbytes);
            }
        }
    }
}

static void S(rnn_backward_rows)(S(fnn_blas_gemm) blas, const fnn_rnn_dims *d, ptrdiff_t lo,
                                 ptrdiff_t hi, const T *w_hh, const int64_t *lengths,
                                 const T *gates, const T *hprev, const T *cprev, const T *dy,
                                 ptrdiff_t lddy, const T *dhn, const T *dcn, T *dgates, T *dh,
                                 T *dc, int want_dh0)
{
    ptrdiff_t Tn = d->steps, H = d->hidden, G = fnn_rnn_gate_width(d), W = fnn_rnn_weight_rows(d);
    ptrdiff_t rs = fnn_rnn_row_stride(d);
    ptrdiff_t t0 = d->reverse ? Tn - 1 : 0, dt = d->reverse ? -1 : 1;
    int lstm = d->mode == FNN_RNN_LSTM, gru = d->mode == FNN_RNN_GRU;
    size_t hbytes = (size_t)H * sizeof(T);
    for (ptrdiff_t n = lo; n < hi; n++) {
        if (dhn) memcpy(dh + n * H, dhn + n * H, hbytes);
        else memset(dh + n * H, 0, hbytes);
        if (lstm && dcn) memcpy(dc + n * H, dcn + n * H, hbytes);
        else if (lstm) memset(dc + n * H, 0, hbytes);
    }
    for (ptrdiff_t s = Tn - 1; s >= 0; s--) {
        ptrdiff_t t = t0 + s * dt;
        for (ptrdiff_t b0 = lo; b0 < hi; b0 += FNN_RNN_BLOCK_ROWS) {
            ptrdiff_t b1 = hi - b0 < FNN_RNN_BLOCK_ROWS ? hi : b0 + FNN_RNN_BLOCK_ROWS;
            for (ptrdiff_t n = b0; n < b1 && !d->gemm_only; n++) {
                ptrdiff_t r = fnn_rnn_row(d, t, n);
                T *dg = dgates + r * G, *dhr = dh + n * H;
                if (!fnn_rnn_active(lengths, t, n)) { /* padding: the carries pass through */
                    memset(dg, 0, (size_t)G * sizeof(T));
                    continue;
                }
                if (dy) S(add_row)(H, dhr, dy + r * lddy);
                if (lstm)
                    S(lstm_row_backward)(H, gates + r * G, cprev + r * H, dhr, dc + n * H, dg);
                else if (gru) S(gru_row_backward)(H, gates + r * G, hprev + r * H, dhr, dg);
                else S(rnn_row_backward)(H, d->mode == FNN_RNN_RELU, gates + r * G, dhr, dg);
            }
            /* dh += d(gates) W_hh (padded rows add zeros); GRU: the hidden-side columns */
            if (s > 0 || want_dh0)
                S(rnn_gemm)(blas, b1 - b0, H, W, dgates + fnn_rnn_row(d, t, b0) * G, rs * G,
                            w_hh, H, 1.0, dh + b0 * H, H);
        }
    }
}

/* ---- GRU: the gate derivatives in the tiles' epilogue ------------------------------
 * When the hidden size is whole panels (on the tiles), a step back runs block by block
 * of sequences, panel by panel of FNN_RNN_PANEL units: a tile adds the recurrent part
 * of the gradient reaching the step's output, dgates (of the step after, in time)
 * W_hh, to the carry in dh, and its epilogue adds dy and derives the step's gate
 * gradients of those units while dh is in L1; no separate pass over dh. Then, when the
 * input size is whole panels too, the block's input gradient dgates W_ih, from the gate
 * gradients just written and still in cache (one BLAS product over all steps
 * otherwise). */
static int S(gru_back_fused)(const fnn_rnn_dims *d)
{
    return d->mode == FNN_RNN_GRU && S(rnn_own_tiles)(d);
}

/* What a step back reads and writes (the arguments of fnn_rnn_backward). */
struct S(back_io) {
    const fnn_rnn_dims *d;
    const T *w_ih, *w_hh;
    const int64_t *lengths;
    const T *gates, *hprev, *dy;
    ptrdiff_t lddy;
    T *dgates, *dh, *dx;
    ptrdiff_t lddx;
    int accumulate_dx;
};

/* The block of sequences a step back works on next: [n0, n0 + m) at time t (m = 0:
 * none). */
struct S(back_next) {
    ptrdiff_t t, n0, m;
};

/* Sequences n0 .. n0 + mb at time t, units [u, u + FNN_RNN_PANEL): dh (the tile's sum)
 * plus dy gives the gate gradients, and dh becomes the carry. A padded step passes dh
 * through and has zero gate gradients. Each row also fetches into L2 the same units of
 * the matching row of the next block (its gates, state and dy, and its gate gradients'
 * lines for writing): they come from memory, and without it the epilogue stalls on
 * them (a third of the step back's time). */
static inline __attribute__((always_inline)) void S(gru_tile_back)(const struct S(back_io) *io,
                                                                 ptrdiff_t t, ptrdiff_t n0,
                                                                 int mb, ptrdiff_t u,
                                                                 const struct S(back_next) *nx)
{
    const fnn_rnn_dims *d = io->d;
    ptrdiff_t H = d->hidden, G = 4 * H, P = FNN_RNN_PANEL;
    for (int i = 0; i < mb; i++) {
        ptrdiff_t n = n0 + i, r = fnn_rnn_row(d, t, n);
        T *dh = io->dh + n * H + u, *dg = io->dgates + r * G + u;
        if (i < nx->m) {
            ptrdiff_t rn = fnn_rnn_row(d, nx->t, nx->n0 + i);
            for (ptrdiff_t v = 0; v < P; v += FNN_RNN_VL) {
                for (int k = 0; k < 4; k++) {
                    __builtin_prefetch(io->gates + rn * G + k * H + u + v, 0, 2);
                    __builtin_prefetch(io->dgates + rn * G + k * H + u + v, 1, 2);
                }
                __builtin_prefetch(io->hprev + rn * H + u + v, 0, 2);
                if (io->dy) __builtin_prefetch(io->dy + rn * io->lddy + u + v, 0, 2);
            }
        }
        if (!fnn_rnn_active(io->lengths, t, n)) {
            for (int k = 0; k < 4; k++) memset(dg + k * H, 0, (size_t)P * sizeof(T));
            continue;
        }
        if (io->dy) S(add_row)(P, dh, io->dy + r * io->lddy + u);
        S(gru_cell_backward)(P, H, io->gates + r * G + u, io->hprev + r * H + u, dh, dg);
    }
}

/* Sequences [b0, b0 + m) at time t; dgn: the gate gradients of their rows at the step
 * after (NULL at the last step: no recurrent part); nx: the block after. */
static FNN_CLONES_AVX512 void S(gru_step_back)(const struct S(back_io) *io, ptrdiff_t t,
                                              ptrdiff_t b0, ptrdiff_t m, const T *dgn,
                                              const struct S(back_next) *nx)
{
    const fnn_rnn_dims *d = io->d;
    ptrdiff_t H = d->hidden, G = 4 * H, lda = fnn_rnn_row_stride(d) * G, K = dgn ? 3 * H : 0;
    const T *a = dgn ? dgn : io->dgates; /* (read nothing from it when K = 0) */
    for (ptrdiff_t u = 0; u < H; u += FNN_RNN_PANEL) {
        const T *w = io->w_hh + u;
        T *c = io->dh + b0 * H + u;
        ptrdiff_t i = 0;
        for (; i + 8 <= m; i += 8)
            S(step_tile_8x2)(K, a + i * lda, lda, 0, NULL, 0, w, H, c + i * H, H, 1);
        for (; i + 4 <= m; i += 4)
            S(step_tile_4x2)(K, a + i * lda, lda, 0, NULL, 0, w, H, c + i * H, H, 1);
        for (; i < m; i++)
            S(step_tile_1x2)(K, a + i * lda, lda, 0, NULL, 0, w, H, c + i * H, H, 1);
        S(gru_tile_back)(io, t, b0, (int)m, u, nx);
    }
}

/* Backpropagation through time of sequences [lo, hi) (rnn_backward_rows' job, fused). */
static void S(gru_backward_rows)(const struct S(back_io) *io, ptrdiff_t lo, ptrdiff_t hi,
                                 const T *dhn, int want_dh0)
{
    const fnn_rnn_dims *d = io->d;
    ptrdiff_t Tn = d->steps, H = d->hidden, I = d->inputs, G = 4 * H;
    ptrdiff_t rs = fnn_rnn_row_stride(d), lda = rs * G;
    ptrdiff_t t0 = d->reverse ? Tn - 1 : 0, dt = d->reverse ? -1 : 1;
    for (ptrdiff_t n = lo; n < hi; n++) {
        if (dhn) memcpy(io->dh + n * H, dhn + n * H, (size_t)H * sizeof(T));
        else memset(io->dh + n * H, 0, (size_t)H * sizeof(T));
    }
    for (ptrdiff_t s = Tn - 1; s >= 0; s--) {
        ptrdiff_t t = t0 + s * dt;
        for (ptrdiff_t b0 = lo; b0 < hi; b0 += FNN_RNN_BLOCK_ROWS) {
            ptrdiff_t m = hi - b0 < FNN_RNN_BLOCK_ROWS ? hi - b0 : FNN_RNN_BLOCK_ROWS;
            T *dg = io->dgates + fnn_rnn_row(d, t, b0) * G;
            const T *dgn = s < Tn - 1 ? io->dgates + fnn_rnn_row(d, t + dt, b0) * G : NULL;
            struct S(back_next) nx = {t, b0 + m, hi - b0 - m}; /* the next block, or the */
            if (nx.m == 0 && s > 0) nx = (struct S(back_next)){t - dt, lo, hi - lo}; /* step's first */
            if (nx.m > FNN_RNN_BLOCK_ROWS) nx.m = FNN_RNN_BLOCK_ROWS;
            S(gru_step_back)(io, t, b0, m, dgn, &nx);
            if (io->dx) { /* input side: gate columns [0, 2H) and [3H, 4H), W_ih's rows */
                T *dx = io->dx + fnn_rnn_row(d, t, b0) * io->lddx;
                (io->accumulate_dx ? S(step_gemm_add) : S(step_gemm))(
                    m, I, 2 * H, dg, lda, H, dg + 3 * H, lda, io->w_ih, I, dx, rs * io->lddx);
            }
            if (s == 0 && want_dh0) /* dh0 = carry + dgates W_hh (hidden side, [0, 3H)) */
                S(step_gemm_add)(m, H, 3 * H, dg, lda, 0, NULL, 0, io->w_hh, H, io->dh + b0 * H, H);
        }
    }
}

/* d[p ldd + v] = s[v cols + p] for v < nv, p < cols (inlined with a constant nv). */
static inline __attribute__((always_inline)) void S(transpose_rows)(ptrdiff_t nv, ptrdiff_t cols,
                                                                  const T *restrict s,
                                                                  T *restrict d, ptrdiff_t ldd)
{
    for (ptrdiff_t p = 0; p < cols; p++)
        for (ptrdiff_t v = 0; v < nv; v++) d[p * ldd + v] = s[v * cols + p];
}

/* dst[p ldd + c(i)] = src[i cols + p] for i < rows, p < cols, where c(i) = i, or with
 * `gates` > 0 the interleaved column of the LSTM (4) or GRU (3) (rows = gates H).
 * FNN_RNN_VL rows of src at a time, whose columns in dst are consecutive, written a row
 * of dst at a time: 4x faster than 16 x 16 blocks written a column at a time, whose 16
 * lines 4 W bytes apart fall into two sets of L1. */
static void S(transpose)(ptrdiff_t rows, ptrdiff_t cols, const T *src, T *dst, ptrdiff_t ldd,
                         int gates)
{
    for (ptrdiff_t i0 = 0; i0 < rows; i0 += FNN_RNN_VL) {
        T *d = dst + (gates ? S(gate_column)(i0, rows / gates, gates) : i0);
        if (rows - i0 >= FNN_RNN_VL) S(transpose_rows)(FNN_RNN_VL, cols, src + i0 * cols, d, ldd);
        else S(transpose_rows)(rows - i0, cols, src + i0 * cols, d, ldd);
    }
}

void S(fnn_rnn_forward)(S(fnn_blas_gemm) blas, const fnn_rnn_dims *d, const T *x,
                        ptrdiff_t ldx, const T *w_ih, const T *w_hh, const T *bias,
                        const T *h0, const T *c0, const int64_t *lengths, T *w_t,
                        T *gates, T *hprev, T *cprev, T *gh, T *y, ptrdiff_t ldy, T *hn,
                        T *cn)
{
    ptrdiff_t W = fnn_rnn_weight_rows(d), H = d->hidden, I = d->inputs;
    if (!d->gemm_only) { /* W_ih^T over W_hh^T: the products' untransposed operands */
        int gates = S(lstm_fused)(d) ? 4 : S(gru_fused)(d) ? 3 : 0;
        S(transpose)(W, I, w_ih, w_t, W, gates);
        S(transpose)(W, H, w_hh, w_t + I * W, W, gates);
    }
    FNN_RNN_OVER_CHUNKS(d, S(rnn_forward_rows)(blas, d, lo, hi, x, ldx, w_t, bias, h0, c0,
                                               lengths, gates, hprev, cprev, gh, y, ldy, hn,
                                               cn));
}

/* ---- weight gradients: dw += dgates^T b over all rows ---------------------------
 * BLAS would first copy the transposed dgates (R x G, the largest array of the step)
 * into packed panels, and for W_ih and W_hh separately; these tiles read each panel of
 * FNN_RNN_PANEL gate columns straight from dgates, once for both weights, 8 gate
 * columns at a time against a panel of x's or h's columns in registers (or, where
 * their width is not whole panels, the whole panel in registers against 8 columns of x
 * or h) (on AVX-512; elsewhere, and in the GEMM-only run, the BLAS products). */

/* dw[i ldw + j] += sum over r < R of g[r ldg + i] b[r ldb + j], i < FNN_RNN_PANEL, j < MB:
 * the panel's columns in registers, b's broadcast (when J is not whole panels). */
#define FNN_RNN_WG_TILE(MB, NAME)                                                            \
    static inline __attribute__((always_inline)) void S(NAME)(                              \
        ptrdiff_t R, const T *g, ptrdiff_t ldg, const T *b, ptrdiff_t ldb, T *dw, ptrdiff_t ldw) \
    {                                                                                        \
        S(wvec) acc[MB][2];                                                                  \
        for (int j = 0; j < MB; j++) acc[j][0] = acc[j][1] = (S(wvec)){0};                   \
        for (ptrdiff_t r = 0; r < R; r++) S(rank1)(MB, 2, acc[0], b + r * ldb, 1, g + r * ldg); \
        for (int j = 0; j < MB; j++)                                                         \
            for (ptrdiff_t l = 0; l < FNN_RNN_VL; l++) {                                     \
                dw[l * ldw + j] += acc[j][0][l];                                             \
                dw[(FNN_RNN_VL + l) * ldw + j] += acc[j][1][l];                              \
            }                                                                                \
    }
FNN_RNN_WG_TILE(8, wgrad_tile_8)
FNN_RNN_WG_TILE(1, wgrad_tile_1)
#undef FNN_RNN_WG_TILE

/* dw[i ldw + j] += sum over r < R of g[r ldg + i] b[r ldb + j], i < MB, j < FNN_RNN_PANEL:
 * b's columns in registers, the gate columns broadcast, so that the sums add to dw's
 * rows a vector at a time (a tile of the transposed orientation above ends in 256
 * scalar additions, 8% of the weight gradients' time). With PF, the tile also fetches
 * lines [l, l1) of pf (line l: row l / 2, half l % 2 of a panel), one per row; with BS
 * it adds the gate columns' sums over the rows to bs[i] (the bias gradient: no pass of
 * its own over dgates). */
#define FNN_RNN_WGV_TILE(MB, NAME, PF, BS)                                                   \
    static inline __attribute__((always_inline)) void S(NAME)(                              \
        ptrdiff_t R, const T *g, ptrdiff_t ldg, const T *b, ptrdiff_t ldb, T *dw, ptrdiff_t ldw, \
        const T *pf, ptrdiff_t l, ptrdiff_t l1, T *bs)                                       \
    {                                                                                        \
        S(wvec) acc[MB * 2];                                                                 \
        T sum[MB];                                                                           \
        for (int i = 0; i < 2 * MB; i++) acc[i] = (S(wvec)){0};                              \
        for (int i = 0; i < MB; i++) sum[i] = 0;                                             \
        for (ptrdiff_t r = 0; r < R; r++) {                                                  \
            if (PF && l < l1) {                                                              \
                __builtin_prefetch(pf + (l >> 1) * ldg + (l & 1) * FNN_RNN_VL);              \
                l++;                                                                         \
            }                                                                                \
            S(rank1)(MB, 2, acc, g + r * ldg, 1, b + r * ldb);                               \
            if (BS)                                                                          \
                for (int i = 0; i < MB; i++) sum[i] += g[r * ldg + i];                       \
        }                                                                                    \
        for (int i = 0; i < MB; i++)                                                         \
            for (int v = 0; v < 2; v++)                                                      \
                *(S(wvec) *)(dw + i * ldw + v * FNN_RNN_VL) += acc[i * 2 + v];               \
        if (BS)                                                                              \
            for (int i = 0; i < MB; i++) bs[i] += sum[i];                                    \
    }
FNN_RNN_WGV_TILE(8, wgrad_vtile_8, 0, 0)
FNN_RNN_WGV_TILE(8, wgrad_vtile_8_pf, 1, 0)
FNN_RNN_WGV_TILE(8, wgrad_vtile_8_bs, 0, 1)
FNN_RNN_WGV_TILE(8, wgrad_vtile_8_pf_bs, 1, 1)
FNN_RNN_WGV_TILE(1, wgrad_vtile_1, 0, 0)
#undef FNN_RNN_WGV_TILE

/* dw (ni, J) += g (R, ni)^T b (R, J), ni <= FNN_RNN_PANEL. pf: the panel's rows of the
 * next pass (pfr of them, or pf NULL), fetched while these are used: each tile of 8
 * gate columns takes an even share of the lines. bs (ni) += the column sums of g, or
 * NULL (only when J and ni are whole panels). */
static FNN_CLONES_AVX512 void S(wgrad_panel)(ptrdiff_t R, ptrdiff_t ni, ptrdiff_t J,
                                            const T *g, ptrdiff_t ldg, const T *b,
                                            ptrdiff_t ldb, T *dw, ptrdiff_t ldw, const T *pf,
                                            ptrdiff_t pfr, T *bs)
{
    ptrdiff_t P = FNN_RNN_PANEL;
    if (J % P == 0) { /* b's columns a panel at a time, 8 gate columns by 8 */
        ptrdiff_t tiles = ni / 8 * (J / P), share = tiles ? (2 * pfr + tiles - 1) / tiles : 0;
        ptrdiff_t tile = 0, i = 0;
        for (; i + 8 <= ni; i += 8)
            for (ptrdiff_t j = 0; j < J; j += P, tile++) {
                ptrdiff_t l0 = tile * share, l1 = l0 + share < 2 * pfr ? l0 + share : 2 * pfr;
                const T *gi = g + i, *bj = b + j;
                T *dwij = dw + i * ldw + j, *bsi = bs && j == 0 ? bs + i : NULL;
                if (pf && l0 < l1 && bsi)
                    S(wgrad_vtile_8_pf_bs)(R, gi, ldg, bj, ldb, dwij, ldw, pf, l0, l1, bsi);
                else if (pf && l0 < l1)
                    S(wgrad_vtile_8_pf)(R, gi, ldg, bj, ldb, dwij, ldw, pf, l0, l1, NULL);
                else if (bsi)
                    S(wgrad_vtile_8_bs)(R, gi, ldg, bj, ldb, dwij, ldw, NULL, 0, 0, bsi);
                else
                    S(wgrad_vtile_8)(R, gi, ldg, bj, ldb, dwij, ldw, NULL, 0, 0, NULL);
            }
        for (; i < ni; i++) /* (a narrower panel: never with bs, see rnn_weight_grads) */
            for (ptrdiff_t j = 0; j < J; j += P)
                S(wgrad_vtile_1)(R, g + i, ldg, b + j, ldb, dw + i * ldw + j, ldw, NULL, 0, 0,
                                 NULL);
        return;
    }
    if (ni < P) {
        for (ptrdiff_t i = 0; i < ni; i++)
            for (ptrdiff_t j = 0; j < J; j++) {
                T sum = 0;
                for (ptrdiff_t r = 0; r < R; r++) sum += g[r * ldg + i] * b[r * ldb + j];
                dw[i * ldw + j] += sum;
            }
        return;
    }
    ptrdiff_t j = 0;
    for (; j + 8 <= J; j += 8) S(wgrad_tile_8)(R, g, ldg, b + j, ldb, dw + j, ldw);
    for (; j < J; j++) S(wgrad_tile_1)(R, g, ldg, b + j, ldb, dw + j, ldw);
}

/* dw_ih += dg[:, in]^T x and dw_hh += dg[:, hid]^T h over all rows. The gate columns
 * of the two weights, in segments {first column for W_hh, first for W_ih, columns, first
 * row of both}: LSTM and RNN {0, 0, W, 0}; GRU {0, 0, 2H, 0} (r, z) and {2H, 3H, H, 2H}
 * (n: W_hn h's gradient is column block 2 of dgates, W_in x's block 3), so that every
 * panel of FNN_RNN_PANEL columns carries the same work for both weights. The panels are
 * shared out between threads, and each thread takes the rows FNN_RNN_WG_ROWS at a time
 * (its panels of those rows, with x and h, stay in L2 while every tile of columns of x
 * and h meets them; dgates streams from memory once). Each weight entry is a sum in a
 * fixed order, the same for any thread count. dbias (G), or NULL: += the column sums
 * of dgates, by the W_hh tiles of each segment and the W_ih tiles of those whose
 * columns differ (the GRU's n), which together cover every gate column once (only
 * with both weights and widths I and H whole panels: fnn_rnn_backward). */
static void S(rnn_weight_grads)(const fnn_rnn_dims *d, const T *x, ptrdiff_t ldx,
                                const T *hprev, const T *dgates, T *dw_ih, T *dw_hh,
                                T *dbias)
{
    ptrdiff_t H = d->hidden, I = d->inputs, G = fnn_rnn_gate_width(d), W = fnn_rnn_weight_rows(d);
    ptrdiff_t R = d->batch * d->steps, P = FNN_RNN_PANEL;
    ptrdiff_t seg[2][4] = {{0, 0, W, 0}, {2 * H, 3 * H, H, 2 * H}};
    ptrdiff_t nseg = 1, first[3] = {0}; /* the segments' first panel in the task list */
    if (d->mode == FNN_RNN_GRU) {
        seg[0][2] = 2 * H;
        nseg = 2;
    }
    for (ptrdiff_t k = 0; k < nseg; k++) first[k + 1] = first[k] + (seg[k][2] + P - 1) / P;
    FNN_PARALLEL_SPLIT(first[nseg], R * G * (I + H), lo, hi,
        for (ptrdiff_t r = 0; r < R; r += FNN_RNN_WG_ROWS) {
            ptrdiff_t nr = R - r < FNN_RNN_WG_ROWS ? R - r : FNN_RNN_WG_ROWS, k = 0;
            const T *g = dgates + r * G;
            for (ptrdiff_t task = lo; task < hi; task++) {
                while (task >= first[k + 1]) k++;
                ptrdiff_t off = (task - first[k]) * P;
                ptrdiff_t ni = seg[k][2] - off < P ? seg[k][2] - off : P, row = seg[k][3] + off;
                /* the panel's rows of the next pass, fetched while these are used */
                const T *pf = R - r > FNN_RNN_WG_ROWS ? g + FNN_RNN_WG_ROWS * G : NULL;
                ptrdiff_t pfr = R - r - nr < FNN_RNN_WG_ROWS ? R - r - nr : FNN_RNN_WG_ROWS;
                int own_cols = !dw_hh || seg[k][1] != seg[k][0]; /* W_ih's, not W_hh's */
                if (dw_hh)
                    S(wgrad_panel)(nr, ni, H, g + seg[k][0] + off, G, hprev + r * H, H,
                                   dw_hh + row * H, H, pf ? pf + seg[k][0] + off : NULL, pfr,
                                   dbias ? dbias + seg[k][0] + off : NULL);
                if (dw_ih)
                    S(wgrad_panel)(nr, ni, I, g + seg[k][1] + off, G, x + r * ldx, ldx,
                                   dw_ih + row * I, I, pf && own_cols ? pf + seg[k][1] + off : NULL,
                                   pfr, dbias && own_cols ? dbias + seg[k][1] + off : NULL);
            }
        });
}

struct S(colsum_ctx) {
    const T *a;
    ptrdiff_t width;
};

static void S(colsum_rows)(ptrdiff_t r0, ptrdiff_t r1, double *acc, void *ctx)
{
    const struct S(colsum_ctx) *c = ctx;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const T *row = c->a + r * c->width;
#pragma omp simd
        for (ptrdiff_t j = 0; j < c->width; j++) acc[j] += row[j];
    }
}

void S(fnn_rnn_backward)(S(fnn_blas_gemm) blas, const fnn_rnn_dims *d, const T *x,
                         ptrdiff_t ldx, const T *w_ih, const T *w_hh, const int64_t *lengths,
                         const T *gates, const T *hprev, const T *cprev, const T *dy,
                         ptrdiff_t lddy, const T *dhn, const T *dcn, T *dgates, T *dh0,
                         T *dc0, int want_dh0, T *dx, ptrdiff_t lddx, int accumulate_dx,
                         T *dw_ih, T *dw_hh, T *dbias, double *scratch)
{
    ptrdiff_t H = d->hidden, I = d->inputs, G = fnn_rnn_gate_width(d), W = fnn_rnn_weight_rows(d);
    ptrdiff_t R = d->batch * d->steps;
    double beta_dx = accumulate_dx ? 1.0 : 0.0;
    int fused = S(gru_back_fused)(d), dx_fused = fused && dx && I % FNN_RNN_PANEL == 0;
    if (fused) {
        struct S(back_io) io = {d,      w_ih, w_hh, lengths, gates,          hprev, dy,
                                lddy,   dgates, dh0, dx_fused ? dx : NULL, lddx, accumulate_dx};
        FNN_RNN_OVER_CHUNKS(d, S(gru_backward_rows)(&io, lo, hi, dhn, want_dh0));
    } else {
        FNN_RNN_OVER_CHUNKS(d, S(rnn_backward_rows)(blas, d, lo, hi, w_hh, lengths, gates, hprev,
                                                    cprev, dy, lddy, dhn, dcn, dgates, dh0, dc0,
                                                    want_dh0));
    }
    /* Weight and input gradients over all steps at once. The weight gradients are
     * the tiles above; the GEMM-only run times the same products through BLAS. */
    int tiles = !d->gemm_only && fnn_rnn_tiles();
    int bias_in_tiles = tiles && dbias && dw_ih && dw_hh && I % FNN_RNN_PANEL == 0 &&
                        H % FNN_RNN_PANEL == 0;
    if (bias_in_tiles) memset(dbias, 0, (size_t)G * sizeof(T));
    if (tiles)
        S(rnn_weight_grads)(d, x, ldx, hprev, dgates, dw_ih, dw_hh, bias_in_tiles ? dbias : NULL);
    else if (dw_hh) S(fnn_gemm)(blas, 1, 0, W, H, R, 1.0, dgates, G, hprev, H, 1.0, dw_hh, H);
    if (d->mode == FNN_RNN_GRU) { /* input side: gate columns [0, 2H) and [3H, 4H) */
        const T *dn = dgates + 3 * H;
        if (dw_ih && !tiles) {
            S(fnn_gemm)(blas, 1, 0, 2 * H, I, R, 1.0, dgates, G, x, ldx, 1.0, dw_ih, I);
            S(fnn_gemm)(blas, 1, 0, H, I, R, 1.0, dn, G, x, ldx, 1.0, dw_ih + 2 * H * I, I);
        }
        if (dx && !dx_fused) {
            S(fnn_gemm)(blas, 0, 0, R, I, 2 * H, 1.0, dgates, G, w_ih, I, beta_dx, dx, lddx);
            S(fnn_gemm)(blas, 0, 0, R, I, H, 1.0, dn, G, w_ih + 2 * H * I, I, 1.0, dx, lddx);
        }
    } else {
        if (dw_ih && !tiles)
            S(fnn_gemm)(blas, 1, 0, W, I, R, 1.0, dgates, G, x, ldx, 1.0, dw_ih, I);
        if (dx) S(fnn_gemm)(blas, 0, 0, R, I, W, 1.0, dgates, G, w_ih, I, beta_dx, dx, lddx);
    }
    if (dbias && !d->gemm_only && !bias_in_tiles) {
        struct S(colsum_ctx) c = {dgates, G};
        fnn_column_sums(R, G, S(colsum_rows), &c, scratch);
        for (ptrdiff_t j = 0; j < G; j++) dbias[j] = (T)scratch[j];
    }
}

/* ---- embeddings ------------------------------------------------------------------ */

void S(fnn_embedding_forward)(ptrdiff_t n, ptrdiff_t D, const int64_t *idx, const T *w, T *y)
{
    FNN_PARALLEL_SPLIT(n, n * D, lo, hi,
                       for (ptrdiff_t i = lo; i < hi; i++)
                           memcpy(y + i * D, w + idx[i] * D, (size_t)D * sizeof(T)));
}

/* Rows [v0, v1) of gw: every thread reads all the indices and adds the gradients of
 * its own rows, in index order. */
static FNN_CLONES void S(embedding_scatter)(ptrdiff_t n, ptrdiff_t D, const int64_t *idx,
                                            const T *gy, int64_t padding_idx, ptrdiff_t v0,
                                            ptrdiff_t v1, T *gw)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        int64_t v = idx[i];
        if (v < v0 || v >= v1 || v == padding_idx) continue;
        T *restrict dst = gw + v * D;
        const T *restrict src = gy + i * D;
#pragma omp simd
        for (ptrdiff_t j = 0; j < D; j++) dst[j] += src[j];
    }
}

void S(fnn_embedding_backward)(ptrdiff_t n, ptrdiff_t V, ptrdiff_t D, const int64_t *idx,
                               const T *gy, int64_t padding_idx, T *gw)
{
    FNN_PARALLEL_SPLIT(V, n * D, v0, v1,
                       S(embedding_scatter)(n, D, idx, gy, padding_idx, v0, v1, gw));
}
