/* Recurrent layers (RNN tanh/relu, LSTM, GRU) and embeddings: declarations.
 *
 * One call runs one direction of one layer over a whole batch of sequences:
 * - per time step and block of sequences, the input and recurrent products (fastnn's
 *   register tiles on AVX-512 when the gate widths are whole panels of 64 bytes x 2;
 *   otherwise, and in the GEMM-only run, BLAS calls cut small enough for its unpacked
 *   small-matrix kernels, recurrent.c) and one fused pass
 *   for the gate nonlinearities and the state update while they are in cache
 *   (forward), or the fused pass for the gate derivatives and the recurrent product
 *   (backward, through time over the gate activations the forward pass stored; for a
 *   GRU on the tiles one pass: the gate derivatives in the recurrent tiles' epilogue,
 *   and the input gradient block by block from them while they are in cache),
 * - the weight gradients over all steps in one pass of register tiles over dgates,
 *   which also sum dgates' columns for the bias gradient when the widths allow (on
 *   AVX-512; BLAS GEMMs elsewhere), and the input gradient as one GEMM (but the GRU's
 *   above).
 * Sequences are independent, so the batch is cut into row chunks whose size depends on
 * the shape only; each chunk runs all its time steps on one thread with no
 * synchronisation, and any thread count gives the same bits. Nothing is allocated.
 *
 * Layout. Every per-step array has one row per (time t, sequence n): row t*N + n
 * (time-major) or n*T + t (batch_first). Rows of x, y, dy and dx may be wider than the
 * data they hold (ldx, ldy, ...: elements per row), so the two directions of a
 * bidirectional layer read and write their halves of one (rows, 2H) array in place.
 *
 * One-step forward (one_step = 1, when no backward follows): gates hold one step, N
 * rows (row n), and hprev, cprev the states going into and out of a step, 2N rows
 * (row n of the first or second half, alternately); they stay in cache instead of
 * streaming every step's values out to memory.
 *
 * Variable lengths: with lengths[n] = L, sequence n is the steps [0, L) of the T = steps.
 * Steps t >= L leave the state unchanged, output zeros and get no gradient (torch's
 * packed sequences); the reverse direction starts at t = L - 1.
 */
#ifndef FASTNN_RECURRENT_H
#define FASTNN_RECURRENT_H

#include "fastnn.h"

/* Cell types; the order is part of the binding (fastnn/_kernels_recurrent.pxi). */
enum fnn_rnn_mode { FNN_RNN_TANH = 0, FNN_RNN_RELU = 1, FNN_RNN_LSTM = 2, FNN_RNN_GRU = 3 };

typedef struct {
    ptrdiff_t batch, steps, inputs, hidden; /* sequences N, time steps T, features I,
                                                hidden size H */
    int mode;             /* enum fnn_rnn_mode */
    int batch_first;      /* row layout, see above */
    int reverse;          /* 1: the backward direction of a bidirectional layer */
    int gemm_only;        /* 1: only the matrix products, to time them alone */
    int one_step;         /* forward only: keep one step's gates and states (see above) */
} fnn_rnn_dims;

/* Gate columns of the rows of `gates`/`dgates`: LSTM i, f, g, o (4H); GRU r, z, n and
 * W_hn h + b_hn (4H); RNN the output h (H). */
static inline ptrdiff_t fnn_rnn_gate_width(const fnn_rnn_dims *d)
{
    return d->mode >= FNN_RNN_LSTM ? 4 * d->hidden : d->hidden;
}

/* Rows of W_ih and W_hh: 4H, 3H or H (torch's layout, gates stacked). */
static inline ptrdiff_t fnn_rnn_weight_rows(const fnn_rnn_dims *d)
{
    return d->mode == FNN_RNN_LSTM  ? 4 * d->hidden
           : d->mode == FNN_RNN_GRU ? 3 * d->hidden
                                    : d->hidden;
}

#define FNN_RECURRENT_DECLARE(T, S)                                                      \
    /* Forward of one direction. x (rows, ldx); w_ih (W, I); w_hh (W, H); bias (G): */   \
    /* LSTM b_ih + b_hh, GRU [b_ir + b_hr, b_iz + b_hz, b_in, b_hn], RNN b_ih + b_hh.   \
     * h0, c0 (N, H) or NULL (zeros); lengths (N) in [1, T] or NULL (all T).            \
     * Out: gates (rows, G), hprev (rows, H) the state each step started from, cprev   \
     * (LSTM, rows, H), y (rows, ldy; may be NULL), hn and cn (LSTM) (N, H) the final  \
     * states. gh: GRU scratch (N, 3H); w_t: scratch (I + H, W). */                      \
    void S(fnn_rnn_forward)(S(fnn_blas_gemm) blas, const fnn_rnn_dims *d, const T *x,    \
                            ptrdiff_t ldx, const T *w_ih, const T *w_hh, const T *bias,  \
                            const T *h0, const T *c0, const int64_t *lengths,           \
                            T *w_t, T *gates, T *hprev, T *cprev, T *gh, T *y,           \
                            ptrdiff_t ldy, T *hn, T *cn);                                \
    /* Backward of one direction from the forward's gates, hprev, cprev. dy (rows,     \
     * lddy), dhn, dcn (N, H): gradients of y, hn, cn (each may be NULL: zero). Out:    \
     * dgates (rows, G) scratch; dh0, dc0 (LSTM) (N, H) the initial states' gradients   \
     * (also the carries of the recurrence, so always given; dh0 is complete only      \
     * with want_dh0); dx (rows, lddx) = (or += with accumulate_dx) the input          \
     * gradient (NULL: not wanted); dw_ih, dw_hh += weight gradients (NULL: frozen);    \
     * dbias (G) = column sums of dgates (NULL: none; the caller adds them to b_ih and  \
     * b_hh); scratch: FNN_COLSUM_SCRATCH(G) doubles. */                                 \
    void S(fnn_rnn_backward)(S(fnn_blas_gemm) blas, const fnn_rnn_dims *d, const T *x,   \
                             ptrdiff_t ldx, const T *w_ih, const T *w_hh,                \
                             const int64_t *lengths, const T *gates, const T *hprev,     \
                             const T *cprev, const T *dy, ptrdiff_t lddy, const T *dhn,  \
                             const T *dcn, T *dgates, T *dh0, T *dc0, int want_dh0,      \
                             T *dx, ptrdiff_t lddx, int accumulate_dx, T *dw_ih,         \
                             T *dw_hh, T *dbias, double *scratch);                       \
    /* y (n, D) = w[idx] (idx in [0, V), checked by the caller). */                      \
    void S(fnn_embedding_forward)(ptrdiff_t n, ptrdiff_t D, const int64_t *idx,         \
                                  const T *w, T *y);                                     \
    /* gw (V, D) += scatter-add of gy (n, D) at idx, skipping padding_idx (-1: none).   \
     * Each row of gw sums its contributions in index order: any thread count gives     \
     * the same bits. */                                                                 \
    void S(fnn_embedding_backward)(ptrdiff_t n, ptrdiff_t V, ptrdiff_t D,               \
                                   const int64_t *idx, const T *gy,                     \
                                   int64_t padding_idx, T *gw);

#define FNN_S32(name) name##_f32
#define FNN_S64(name) name##_f64
FNN_RECURRENT_DECLARE(float, FNN_S32)
FNN_RECURRENT_DECLARE(double, FNN_S64)
#undef FNN_S32
#undef FNN_S64

#endif
