# Recurrent layers and embeddings (csrc/recurrent.h): declarations and checked wrappers.
#
# Included by _kernels.pyx; arguments checked by _check.pxi's helpers before any
# pointer reaches C. The embedding kernels are declared once over `floating`
# (binding.h's FNN_FUSED); the recurrent ones take the BLAS routine, whose type differs
# with the dtype, so they are declared per dtype and called once for each, as gemm is.

cdef extern from "recurrent.h" nogil:
    int FNN_RNN_TANH, FNN_RNN_RELU, FNN_RNN_LSTM, FNN_RNN_GRU
    ctypedef struct fnn_rnn_dims:
        Py_ssize_t batch, steps, inputs, hidden
        int mode, batch_first, reverse, gemm_only, one_step
    Py_ssize_t fnn_rnn_gate_width(const fnn_rnn_dims *d)
    Py_ssize_t fnn_rnn_weight_rows(const fnn_rnn_dims *d)

    void fnn_rnn_forward_f32(fnn_blas_gemm_f32 blas, const fnn_rnn_dims *d, const float *x,
                             Py_ssize_t ldx, const float *w_ih, const float *w_hh,
                             const float *bias, const float *h0, const float *c0,
                             const int64_t *lengths, float *w_t, float *gates,
                             float *hprev, float *cprev, float *gh, float *y, Py_ssize_t ldy,
                             float *hn, float *cn)
    void fnn_rnn_forward_f64(fnn_blas_gemm_f64 blas, const fnn_rnn_dims *d,
                             const double *x, Py_ssize_t ldx, const double *w_ih,
                             const double *w_hh, const double *bias, const double *h0,
                             const double *c0, const int64_t *lengths, double *w_t,
                             double *gates, double *hprev, double *cprev, double *gh,
                             double *y, Py_ssize_t ldy, double *hn, double *cn)
    void fnn_rnn_backward_f32(fnn_blas_gemm_f32 blas, const fnn_rnn_dims *d, const float *x,
                              Py_ssize_t ldx, const float *w_ih, const float *w_hh,
                              const int64_t *lengths, const float *gates,
                              const float *hprev, const float *cprev, const float *dy,
                              Py_ssize_t lddy, const float *dhn, const float *dcn,
                              float *dgates, float *dh0, float *dc0, int want_dh0,
                              float *dx, Py_ssize_t lddx, int accumulate_dx, float *dw_ih,
                              float *dw_hh, float *dbias, double *scratch)
    void fnn_rnn_backward_f64(fnn_blas_gemm_f64 blas, const fnn_rnn_dims *d,
                              const double *x, Py_ssize_t ldx, const double *w_ih,
                              const double *w_hh, const int64_t *lengths,
                              const double *gates, const double *hprev,
                              const double *cprev, const double *dy, Py_ssize_t lddy,
                              const double *dhn, const double *dcn, double *dgates,
                              double *dh0, double *dc0, int want_dh0, double *dx,
                              Py_ssize_t lddx, int accumulate_dx, double *dw_ih,
                              double *dw_hh, double *dbias, double *scratch)

cdef extern from "binding.h" nogil:
    void fnn_embedding_forward "FNN_FUSED(fnn_embedding_forward)"(
        Py_ssize_t n, Py_ssize_t D, const int64_t *idx, const floating *w, floating *y)
    void fnn_embedding_backward "FNN_FUSED(fnn_embedding_backward)"(
        Py_ssize_t n, Py_ssize_t V, Py_ssize_t D, const int64_t *idx, const floating *gy,
        int64_t padding_idx, floating *gw)

RNN_TANH = FNN_RNN_TANH
RNN_RELU = FNN_RNN_RELU
RNN_LSTM = FNN_RNN_LSTM
RNN_GRU = FNN_RNN_GRU


cdef int _rnn_dims(fnn_rnn_dims *d, str fn, int mode, bint batch_first, bint reverse,
                   bint gemm_only, cnp.ndarray X, cnp.ndarray Wih, cnp.ndarray Whh,
                   cnp.ndarray Hn) except -1:
    """Fill d from x (rows, I), w_ih (W, I), w_hh (W, H), hn (N, H) and check that the
    weights have the W rows of the mode."""
    if mode < FNN_RNN_TANH or mode > FNN_RNN_GRU:
        raise ValueError(f"{fn}: unknown recurrent mode {mode}")
    cdef Py_ssize_t N = Hn.shape[0], rows = X.shape[0]
    _positive(N, fn, "hn.shape[0] (the batch)")
    _positive(Whh.shape[1], fn, "w_hh.shape[1] (the hidden size)")
    _positive(Wih.shape[1], fn, "w_ih.shape[1] (the input size)")
    if rows < N or rows % N:
        raise ValueError(f"{fn}: x has {rows} rows, not a positive multiple of the batch {N}")
    d.batch, d.steps, d.inputs, d.hidden = N, rows // N, Wih.shape[1], Whh.shape[1]
    d.mode, d.batch_first, d.reverse, d.gemm_only = mode, batch_first, reverse, gemm_only
    d.one_step = 0
    if fnn_rnn_weight_rows(d) != Whh.shape[0]:
        raise ValueError(f"{fn}: w_hh must have {fnn_rnn_weight_rows(d)} rows for hidden "
                         f"size {d.hidden}, got {Whh.shape[0]}")
    return 0


cdef const int64_t *_lengths(object lengths, str fn, Py_ssize_t N, Py_ssize_t T) except? NULL:
    """The checked lengths (N values in [1, T]), or NULL for None."""
    cdef const int64_t *p = _i64(lengths, fn, "lengths", N, _OPT)
    cdef Py_ssize_t n
    if p != NULL:
        for n in range(N):
            if p[n] < 1 or p[n] > T:
                raise ValueError(f"{fn}: lengths must be in [1, {T}], got {p[n]} at "
                                 f"position {n}")
    return p


cdef Py_ssize_t _col(bint bidirectional, bint reverse, Py_ssize_t H) noexcept:
    """Column of a direction's half in rows of D * H (the reverse half second)."""
    return H if bidirectional and reverse else 0


def rnn_forward(int mode, bint batch_first, bint reverse, bint bidirectional, x, w_ih, w_hh,
                bias, h0, c0, lengths, w_t, gates, hprev, cprev, gh, y, hn, cn,
                bint gemm_only=False, bint one_step=False):
    """One direction of a recurrent layer over all time steps (csrc/recurrent.h).

    x (N*T, I) rows in the layout of `batch_first`; w_ih (W, I), w_hh (W, H); bias (G)
    the combined bias; h0, c0 (N, H) or None; lengths (N,) int64 or None. w_t: scratch
    (I + H, W) (the kernel's transposed copies of w_ih and w_hh). Out: gates
    (N*T, G), hprev (N*T, H), cprev (N*T, H) for LSTM, gh (N, 3H) for GRU (each None
    otherwise), y (N*T, D*H) or None (this direction writes its half: the second of a
    bidirectional layer's when reverse), hn (N, H), cn (N, H) for LSTM. G is 4H for
    LSTM and GRU, H for RNN. gemm_only: only the matrix products (to time them alone;
    the outputs are then meaningless). one_step: no backward follows; gates then hold
    one step (N, G) and hprev, cprev the states into and out of a step (2N, H)."""
    if _is_f32(x, "rnn_forward", "x"):
        _rnn_forward(<float *>NULL, mode, batch_first, reverse, bidirectional, x, w_ih, w_hh,
                     bias, h0, c0, lengths, w_t, gates, hprev, cprev, gh, y, hn, cn,
                     gemm_only, one_step)
    else:
        _rnn_forward(<double *>NULL, mode, batch_first, reverse, bidirectional, x, w_ih, w_hh,
                     bias, h0, c0, lengths, w_t, gates, hprev, cprev, gh, y, hn, cn,
                     gemm_only, one_step)


cdef int _rnn_forward(floating *t, int mode, bint batch_first, bint reverse,
                      bint bidirectional, x, w_ih, w_hh, bias, h0, c0, lengths, w_t,
                      gates, hprev, cprev, gh, y, hn, cn, bint gemm_only,
                      bint one_step) except -1:
    cdef str fn = "rnn_forward"
    cdef fnn_rnn_dims d
    _rnn_dims(&d, fn, mode, batch_first, reverse, gemm_only, _arr(x, fn, "x", 2),
              _arr(w_ih, fn, "w_ih", 2), _arr(w_hh, fn, "w_hh", 2), _arr(hn, fn, "hn", 2))
    cdef Py_ssize_t N = d.batch, H = d.hidden, I = d.inputs, R = d.batch * d.steps
    cdef Py_ssize_t G = fnn_rnn_gate_width(&d), W = fnn_rnn_weight_rows(&d)
    cdef Py_ssize_t D = 2 if bidirectional else 1
    cdef bint lstm = mode == FNN_RNN_LSTM, gru = mode == FNN_RNN_GRU
    cdef Py_ssize_t SR = 2 * N if one_step else R  # rows of hprev and cprev
    d.one_step = one_step
    cdef floating *px = _flt(t, x, fn, "x", R * I)
    cdef floating *pwi = _flt(t, w_ih, fn, "w_ih", W * I)
    cdef floating *pwh = _flt(t, w_hh, fn, "w_hh", W * H)
    cdef floating *pb = _flt(t, bias, fn, "bias", G)
    cdef floating *ph0 = _flt(t, h0, fn, "h0", N * H, _OPT)
    cdef floating *pc0 = _flt(t, c0, fn, "c0", N * H, _OPT) if lstm else NULL
    cdef const int64_t *plen = _lengths(lengths, fn, N, d.steps)
    cdef floating *pwt = _flt(t, w_t, fn, "w_t", (I + H) * W, _W)
    cdef floating *pg = _flt(t, gates, fn, "gates", (N if one_step else R) * G, _W)
    cdef floating *php = _flt(t, hprev, fn, "hprev", SR * H, _W)
    cdef floating *pcp = _flt(t, cprev, fn, "cprev", SR * H, _W) if lstm else NULL
    cdef floating *pgh = _flt(t, gh, fn, "gh", N * 3 * H, _W) if gru else NULL
    cdef floating *py = _flt(t, y, fn, "y", R * D * H, _W | _OPT)
    cdef floating *phn = _flt(t, hn, fn, "hn", N * H, _W)
    cdef floating *pcn = _flt(t, cn, fn, "cn", N * H, _W) if lstm else NULL
    if py != NULL:
        py += _col(bidirectional, reverse, H)
    with nogil:
        if floating is float:
            fnn_rnn_forward_f32(<fnn_blas_gemm_f32>sgemm, &d, px, I, pwi, pwh, pb, ph0, pc0,
                                plen, pwt, pg, php, pcp, pgh, py, D * H, phn, pcn)
        else:
            fnn_rnn_forward_f64(<fnn_blas_gemm_f64>dgemm, &d, px, I, pwi, pwh, pb, ph0, pc0,
                                plen, pwt, pg, php, pcp, pgh, py, D * H, phn, pcn)
    return 0


def rnn_backward(int mode, bint batch_first, bint reverse, bint bidirectional, x, w_ih,
                 w_hh, lengths, gates, hprev, cprev, dy, dhn, dcn, dgates, dh0, dc0,
                 bint want_dh0, dx, bint accumulate_dx, dw_ih, dw_hh, dbias, scratch,
                 bint gemm_only=False):
    """Backward of rnn_forward over the same x, weights, lengths, gates, hprev, cprev.

    dy (N*T, D*H) (this direction reads its half), dhn, dcn (N, H): gradients of y, hn,
    cn, each None for zero. Out: dgates (N*T, G); dh0, dc0 (LSTM) (N, H) gradients of
    the initial state (dh0 complete only with want_dh0); dx (N*T, I) or None, overwritten
    or accumulated; dw_ih, dw_hh accumulated (None: skipped); dbias (G) the column sums
    of dgates (None: skipped; else scratch holds COLSUM_SCRATCH_ROWS * G doubles).
    gemm_only as for rnn_forward."""
    if _is_f32(x, "rnn_backward", "x"):
        _rnn_backward(<float *>NULL, mode, batch_first, reverse, bidirectional, x, w_ih,
                      w_hh, lengths, gates, hprev, cprev, dy, dhn, dcn, dgates, dh0, dc0,
                      want_dh0, dx, accumulate_dx, dw_ih, dw_hh, dbias, scratch, gemm_only)
    else:
        _rnn_backward(<double *>NULL, mode, batch_first, reverse, bidirectional, x, w_ih,
                      w_hh, lengths, gates, hprev, cprev, dy, dhn, dcn, dgates, dh0, dc0,
                      want_dh0, dx, accumulate_dx, dw_ih, dw_hh, dbias, scratch, gemm_only)


cdef int _rnn_backward(floating *t, int mode, bint batch_first, bint reverse,
                       bint bidirectional, x, w_ih, w_hh, lengths, gates, hprev, cprev, dy,
                       dhn, dcn, dgates, dh0, dc0, bint want_dh0, dx, bint accumulate_dx,
                       dw_ih, dw_hh, dbias, scratch, bint gemm_only) except -1:
    cdef str fn = "rnn_backward"
    cdef fnn_rnn_dims d
    _rnn_dims(&d, fn, mode, batch_first, reverse, gemm_only, _arr(x, fn, "x", 2),
              _arr(w_ih, fn, "w_ih", 2), _arr(w_hh, fn, "w_hh", 2), _arr(dh0, fn, "dh0", 2))
    cdef Py_ssize_t N = d.batch, H = d.hidden, I = d.inputs, R = d.batch * d.steps
    cdef Py_ssize_t G = fnn_rnn_gate_width(&d), W = fnn_rnn_weight_rows(&d)
    cdef Py_ssize_t D = 2 if bidirectional else 1
    cdef bint lstm = mode == FNN_RNN_LSTM
    cdef floating *px = _flt(t, x, fn, "x", R * I)
    cdef floating *pwi = _flt(t, w_ih, fn, "w_ih", W * I)
    cdef floating *pwh = _flt(t, w_hh, fn, "w_hh", W * H)
    cdef const int64_t *plen = _lengths(lengths, fn, N, d.steps)
    cdef floating *pg = _flt(t, gates, fn, "gates", R * G)
    cdef floating *php = _flt(t, hprev, fn, "hprev", R * H)
    cdef floating *pcp = _flt(t, cprev, fn, "cprev", R * H) if lstm else NULL
    cdef floating *pdy = _flt(t, dy, fn, "dy", R * D * H, _OPT)
    cdef floating *pdhn = _flt(t, dhn, fn, "dhn", N * H, _OPT)
    cdef floating *pdcn = _flt(t, dcn, fn, "dcn", N * H, _OPT) if lstm else NULL
    cdef floating *pdg = _flt(t, dgates, fn, "dgates", R * G, _W)
    cdef floating *pdh0 = _flt(t, dh0, fn, "dh0", N * H, _W)
    cdef floating *pdc0 = _flt(t, dc0, fn, "dc0", N * H, _W) if lstm else NULL
    cdef floating *pdx = _flt(t, dx, fn, "dx", R * I, _W | _OPT)
    cdef floating *pdwi = _flt(t, dw_ih, fn, "dw_ih", W * I, _W | _OPT)
    cdef floating *pdwh = _flt(t, dw_hh, fn, "dw_hh", W * H, _W | _OPT)
    cdef floating *pdb = _flt(t, dbias, fn, "dbias", G, _W | _OPT)
    cdef double *ps = _f64(scratch, fn, "scratch", (FNN_ROW_CHUNKS + 3) * G,
                           _W | _MIN) if pdb != NULL else NULL
    if pdy != NULL:
        pdy += _col(bidirectional, reverse, H)
    with nogil:
        if floating is float:
            fnn_rnn_backward_f32(<fnn_blas_gemm_f32>sgemm, &d, px, I, pwi, pwh, plen, pg, php,
                                 pcp, pdy, D * H, pdhn, pdcn, pdg, pdh0, pdc0, want_dh0, pdx,
                                 I, accumulate_dx, pdwi, pdwh, pdb, ps)
        else:
            fnn_rnn_backward_f64(<fnn_blas_gemm_f64>dgemm, &d, px, I, pwi, pwh, plen, pg, php,
                                 pcp, pdy, D * H, pdhn, pdcn, pdg, pdh0, pdc0, want_dh0, pdx,
                                 I, accumulate_dx, pdwi, pdwh, pdb, ps)
    return 0


cdef int _check_ids(const int64_t *idx, Py_ssize_t n, Py_ssize_t V) except -1:
    cdef Py_ssize_t i
    for i in range(n):
        if idx[i] < 0 or idx[i] >= V:
            raise IndexError(f"Embedding: token id {idx[i]} at position {i} is out of "
                             f"range [0, {V})")
    return 0


def embedding_forward(idx, w, y):
    """y[i] = w[idx[i]] for idx (n,) int64 with ids in [0, V), w (V, D), y (n, D)."""
    if _is_f32(w, "embedding_forward", "w"):
        _embedding_forward(<float *>NULL, idx, w, y)
    else:
        _embedding_forward(<double *>NULL, idx, w, y)


cdef int _embedding_forward(floating *t, idx, w, y) except -1:
    cdef str fn = "embedding_forward"
    cdef cnp.ndarray Wt = _arr(w, fn, "w", 2)
    cdef Py_ssize_t n = _arr(idx, fn, "idx", 1).size, D = Wt.shape[1]
    cdef const int64_t *pi = _i64(idx, fn, "idx", n)
    cdef floating *pw = _flt(t, w, fn, "w", Wt.size)
    cdef floating *py = _flt(t, y, fn, "y", n * D, _W)
    _check_ids(pi, n, Wt.shape[0])
    with nogil:
        fnn_embedding_forward(n, D, pi, pw, py)
    return 0


def embedding_backward(idx, gy, int64_t padding_idx, gw):
    """gw[idx[i]] += gy[i] for every i with idx[i] != padding_idx (-1: none); idx (n,)
    int64, gy (n, D), gw (V, D); the same bits for any thread count."""
    if _is_f32(gw, "embedding_backward", "gw"):
        _embedding_backward(<float *>NULL, idx, gy, padding_idx, gw)
    else:
        _embedding_backward(<double *>NULL, idx, gy, padding_idx, gw)


cdef int _embedding_backward(floating *t, idx, gy, int64_t padding_idx, gw) except -1:
    cdef str fn = "embedding_backward"
    cdef cnp.ndarray GW = _arr(gw, fn, "gw", 2)
    cdef Py_ssize_t n = _arr(idx, fn, "idx", 1).size, D = GW.shape[1]
    cdef const int64_t *pi = _i64(idx, fn, "idx", n)
    cdef floating *pgy = _flt(t, gy, fn, "gy", n * D)
    cdef floating *pgw = _flt(t, gw, fn, "gw", GW.size, _W)
    _check_ids(pi, n, GW.shape[0])
    with nogil:
        fnn_embedding_backward(n, GW.shape[0], D, pi, pgy, padding_idx, pgw)
    return 0
