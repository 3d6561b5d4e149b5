/* Recurrent layers and embeddings (declarations and layout: recurrent.h). */
#include <string.h>
#include "recurrent.h"
#include "parallel.h"
#include "simd.h"
#include "generic/act_math.h"
#include "vmath.h"
#include <math.h>

/* Rows per batch chunk at least, and a multiple of this (whole micro-kernel tiles for
 * the per-step GEMMs). */
#define FNN_RNN_CHUNK_ALIGN 16

/* The batch is cut into at most fnn_gemm_blocks chunks (fixed for the process, see
 * gemm.c): the cut depends on N only, never on the thread count. */
static void fnn_rnn_chunks(ptrdiff_t N, ptrdiff_t *len, ptrdiff_t *count)
{
    ptrdiff_t l = (N + fnn_gemm_blocks - 1) / fnn_gemm_blocks;
    l = (l + FNN_RNN_CHUNK_ALIGN - 1) / FNN_RNN_CHUNK_ALIGN * FNN_RNN_CHUNK_ALIGN;
    if (l < 1) l = 1;
    *len = l;
    *count = (N + l - 1) / l;
}

/* The per-step products run in blocks of at most FNN_RNN_BLOCK_ROWS rows and
 * FNN_RNN_BLOCK_MACS multiply-adds, untransposed: OpenBLAS computes products that small
 * (m n k <= 100^3) in its small-matrix kernels, straight from the operands, where a
 * larger call first copies both operands into packed panels - the whole weight matrix
 * at every step. At the recurrent layers' shapes (32 x 512 x 128) the small kernels run
 * 1.3-2x faster than the packed path (AVX-512 builds; elsewhere the blocks cost little:
 * a column block packs its own part of the weights). */
#define FNN_RNN_BLOCK_ROWS 32
#define FNN_RNN_BLOCK_MACS 1000000
#define FNN_RNN_BLOCK_PARTS 4

/* The length of each of `parts` even pieces of n, a multiple of 16. */
static inline ptrdiff_t fnn_rnn_cut(ptrdiff_t n, ptrdiff_t parts)
{
    ptrdiff_t l = (n + parts - 1) / parts;
    return (l + 15) / 16 * 16;
}

/* Rows of dgates per pass of the weight-gradient tiles (generic/recurrent.h): a pass's
 * panels of dgates, its rows of x and h and the next pass's panels (being fetched) fit
 * in a core's L2 even on one thread at the GRU's 4 x 128 gate columns (256 rows did
 * not: 3% slower there; 512 rows 13%). */
#define FNN_RNN_WG_ROWS 128

/* fastnn's register tiles (generic/recurrent.h) keep 16 accumulators of 64 bytes:
 * AVX-512's 32 vector registers hold them (the x86-64-v4 clone); with AVX2's 16 they
 * would spill, and the BLAS products are faster. */
static int fnn_rnn_tiles(void)
{
    return fnn_avx512_runs();
}

/* Row of (t, n) in a per-step array. */
static inline ptrdiff_t fnn_rnn_row(const fnn_rnn_dims *d, ptrdiff_t t, ptrdiff_t n)
{
    return d->batch_first ? n * d->steps + t : t * d->batch + n;
}

/* Row of sequence n at step s (the s-th taken, t = its time) in gates (state = 0) or
 * in hprev and cprev (state = 1): the row of (t, n), or with one_step row n, of the
 * half for s's parity in hprev, cprev. */
static inline ptrdiff_t fnn_rnn_srow(const fnn_rnn_dims *d, ptrdiff_t t, ptrdiff_t s, ptrdiff_t n,
                                     int state)
{
    return !d->one_step ? fnn_rnn_row(d, t, n) : state && (s & 1) ? d->batch + n : n;
}

/* Rows between (t, n) and (t, n + 1). */
static inline ptrdiff_t fnn_rnn_row_stride(const fnn_rnn_dims *d)
{
    return d->batch_first ? d->steps : 1;
}

/* Sequence n takes part in step t. */
static inline int fnn_rnn_active(const int64_t *lengths, ptrdiff_t t, ptrdiff_t n)
{
    return lengths == NULL || t < lengths[n];
}

/* Run CALL for each batch chunk [lo, hi), in parallel when there are several. */
#define FNN_RNN_OVER_CHUNKS(d, CALL)                                                  \
    do {                                                                              \
        ptrdiff_t len_, count_;                                                       \
        fnn_rnn_chunks((d)->batch, &len_, &count_);                                       \
        if (count_ == 1) { /* one chunk: its GEMMs may use every thread */            \
            ptrdiff_t lo = 0, hi = (d)->batch;                                            \
            CALL;                                                                     \
        } else {                                                                      \
            int nt_ = fnn_num_threads < count_ ? fnn_num_threads : (int)count_;       \
            _Pragma("omp parallel for schedule(static) num_threads(nt_)")            \
            for (ptrdiff_t c_ = 0; c_ < count_; c_++) {                               \
                ptrdiff_t lo = c_ * len_, hi = lo + len_ < (d)->batch ? lo + len_ : (d)->batch; \
                CALL;                                                                 \
            }                                                                         \
        }                                                                             \
    } while (0)

/* The LSTM cell's gates (vmath.h's rational tanh in float: the cell update is the
 * forward pass's largest cost besides its products; the backward uses the same). */
static inline __attribute__((always_inline)) float fnn_rnn_tanh_f32(float x)
{
    return fnn_tanhf_rational(x);
}

static inline __attribute__((always_inline)) float fnn_rnn_sigmoid_f32(float x)
{
    return fnn_sigmoidf_rational(x);
}

/* Double precision (checks, not speed): libm's. */
static inline double fnn_rnn_tanh_f64(double x) { return tanh(x); }
static inline double fnn_rnn_sigmoid_f64(double x) { return fnn_sigmoid(x); }

#define FNN_GENERIC "generic/recurrent.h"
#include "instantiate.h"
