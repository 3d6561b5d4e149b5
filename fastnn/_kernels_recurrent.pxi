# Recurrent layers and embeddings (csrc/recurrent.h): declarations and checked wrappers.
#
# Included by _kernels.pyx. Every wrapper takes typed memoryviews of one float type
# (fused `floating`: float32 or float64 throughout, else TypeError) and checks every
# shape against the others before it releases the GIL, so a wrong shape, dtype or a
# missing buffer raises instead of reading or writing out of bounds.

cdef extern from "recurrent.h" nogil:
    int FNN_RNN_TANH, FNN_RNN_RELU, FNN_RNN_LSTM, FNN_RNN_GRU
    ctypedef struct fnn_rnn_dims:
        Py_ssize_t batch, steps, inputs, hidden
        int mode, batch_first, reverse, gemm_only
    Py_ssize_t fnn_rnn_gate_width(const fnn_rnn_dims *d)
    Py_ssize_t fnn_rnn_weight_rows(const fnn_rnn_dims *d)

    void fnn_rnn_forward_f32(fnn_blas_gemm_f32 blas, const fnn_rnn_dims *d, const float *x,
                             Py_ssize_t ldx, const float *w_ih, const float *w_hh,
                             const float *bias, const float *h0, const float *c0,
                             const int64_t *lengths, float *gates, float *hprev,
                             float *cprev, float *gh, float *y, Py_ssize_t ldy, float *hn,
                             float *cn)
    void fnn_rnn_forward_f64(fnn_blas_gemm_f64 blas, const fnn_rnn_dims *d,
                             const double *x, Py_ssize_t ldx, const double *w_ih,
                             const double *w_hh, const double *bias, const double *h0,
                             const double *c0, const int64_t *lengths, double *gates,
                             double *hprev, double *cprev, double *gh, double *y,
                             Py_ssize_t ldy, double *hn, double *cn)
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
    void fnn_embedding_forward_f32(Py_ssize_t n, Py_ssize_t D, const int64_t *idx,
                                   const float *w, float *y)
    void fnn_embedding_forward_f64(Py_ssize_t n, Py_ssize_t D, const int64_t *idx,
                                   const double *w, double *y)
    void fnn_embedding_backward_f32(Py_ssize_t n, Py_ssize_t V, Py_ssize_t D,
                                    const int64_t *idx, const float *gy,
                                    int64_t padding_idx, float *gw)
    void fnn_embedding_backward_f64(Py_ssize_t n, Py_ssize_t V, Py_ssize_t D,
                                    const int64_t *idx, const double *gy,
                                    int64_t padding_idx, double *gw)

RNN_TANH = FNN_RNN_TANH
RNN_RELU = FNN_RNN_RELU
RNN_LSTM = FNN_RNN_LSTM
RNN_GRU = FNN_RNN_GRU


cdef int _check_shape(str what, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t want_rows,
                      Py_ssize_t want_cols) except -1:
    if rows != want_rows or cols != want_cols:
        raise ValueError(f"{what}: expected shape ({want_rows}, {want_cols}), "
                         f"got ({rows}, {cols})")
    return 0


cdef Py_ssize_t _row_pitch(str what, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t stride0,
                           Py_ssize_t stride1, Py_ssize_t itemsize, Py_ssize_t want_rows,
                           Py_ssize_t want_cols) except -1:
    """Elements from one row to the next of a (rows, cols) view whose rows are
    contiguous (a column slice of a wider C-contiguous array is fine)."""
    _check_shape(what, rows, cols, want_rows, want_cols)
    if (cols > 1 and stride1 != itemsize) or stride0 % itemsize or stride0 < cols * itemsize:
        raise ValueError(f"{what}: rows must be contiguous and not overlap")
    return stride0 // itemsize


cdef int _check_lengths(const int64_t[::1] lengths, Py_ssize_t N, Py_ssize_t T) except -1:
    if lengths.shape[0] != N:
        raise ValueError(f"lengths: expected {N} entries, got {lengths.shape[0]}")
    cdef Py_ssize_t n
    for n in range(N):
        if lengths[n] < 1 or lengths[n] > T:
            raise ValueError(f"lengths: every length must be in [1, {T}], got "
                             f"{lengths[n]} at position {n}")
    return 0


cdef int _rnn_dims(fnn_rnn_dims *d, int mode, bint batch_first, bint reverse, Py_ssize_t N,
                   Py_ssize_t rows, Py_ssize_t I, Py_ssize_t W, Py_ssize_t H) except -1:
    """Fill d and check the weights' W rows against the mode."""
    if mode < FNN_RNN_TANH or mode > FNN_RNN_GRU:
        raise ValueError(f"unknown recurrent mode {mode}")
    if N < 1 or H < 1 or I < 1 or rows < N or rows % N:
        raise ValueError(f"recurrent kernel: {rows} rows is not a positive multiple of "
                         f"the batch {N}")
    d.batch, d.steps, d.inputs, d.hidden = N, rows // N, I, H
    d.mode, d.batch_first, d.reverse, d.gemm_only = mode, batch_first, reverse, 0
    if fnn_rnn_weight_rows(d) != W:
        raise ValueError(f"recurrent weights: expected {fnn_rnn_weight_rows(d)} rows for "
                         f"hidden size {H}, got {W}")
    return 0


def rnn_forward(int mode, bint batch_first, bint reverse, const floating[:, :] x,
                const floating[:, ::1] w_ih, const floating[:, ::1] w_hh,
                const floating[::1] bias, const floating[:, ::1] h0,
                const floating[:, ::1] c0, const int64_t[::1] lengths,
                floating[:, ::1] gates, floating[:, ::1] hprev, floating[:, ::1] cprev,
                floating[:, ::1] gh, floating[:, :] y, floating[:, ::1] hn,
                floating[:, ::1] cn, bint gemm_only=False):
    """One direction of a recurrent layer over all time steps (csrc/recurrent.h).

    x (N*T, I) rows in the layout of `batch_first`; w_ih (W, I), w_hh (W, H); bias (G)
    the combined bias; h0, c0 (N, H) or None; lengths (N,) int64 or None. Out: gates
    (N*T, G), hprev (N*T, H), cprev (N*T, H) for LSTM (else None), gh (N, 3H) for GRU
    (else None), y (N*T, H) with any row pitch or None, hn (N, H), cn (N, H) for LSTM.
    G is 4H for LSTM and GRU, H for RNN. gemm_only: run only the matrix products (to
    time them alone; the outputs are then meaningless)."""
    if x is None or w_ih is None or w_hh is None or bias is None or gates is None \
            or hprev is None or hn is None:
        raise ValueError("rnn_forward: x, weights, bias, gates, hprev and hn are required")
    cdef fnn_rnn_dims d
    cdef Py_ssize_t N = hn.shape[0], H = w_hh.shape[1], I = w_ih.shape[1], rows = x.shape[0]
    cdef Py_ssize_t isz = sizeof(floating)
    _rnn_dims(&d, mode, batch_first, reverse, N, rows, I, w_hh.shape[0], H)
    d.gemm_only = gemm_only
    cdef Py_ssize_t G = fnn_rnn_gate_width(&d), W = w_hh.shape[0]
    cdef bint lstm = mode == FNN_RNN_LSTM, gru = mode == FNN_RNN_GRU
    cdef Py_ssize_t ldx = _row_pitch("x", x.shape[0], x.shape[1], x.strides[0], x.strides[1],
                                     isz, rows, I)
    cdef Py_ssize_t ldy = 0
    _check_shape("w_ih", w_ih.shape[0], w_ih.shape[1], W, I)
    _check_shape("bias", bias.shape[0], 1, G, 1)
    _check_shape("gates", gates.shape[0], gates.shape[1], rows, G)
    _check_shape("hprev", hprev.shape[0], hprev.shape[1], rows, H)
    _check_shape("hn", hn.shape[0], hn.shape[1], N, H)
    if h0 is not None:
        _check_shape("h0", h0.shape[0], h0.shape[1], N, H)
    if lstm:
        if cprev is None or cn is None:
            raise ValueError("rnn_forward: an LSTM needs cprev and cn")
        _check_shape("cprev", cprev.shape[0], cprev.shape[1], rows, H)
        _check_shape("cn", cn.shape[0], cn.shape[1], N, H)
        if c0 is not None:
            _check_shape("c0", c0.shape[0], c0.shape[1], N, H)
    if gru:
        if gh is None:
            raise ValueError("rnn_forward: a GRU needs gh")
        _check_shape("gh", gh.shape[0], gh.shape[1], N, 3 * H)
    if y is not None:
        ldy = _row_pitch("y", y.shape[0], y.shape[1], y.strides[0], y.strides[1], isz, rows, H)
    if lengths is not None:
        _check_lengths(lengths, N, d.steps)
    cdef const floating *p_h0 = &h0[0, 0] if h0 is not None else NULL
    cdef const floating *p_c0 = &c0[0, 0] if lstm and c0 is not None else NULL
    cdef const int64_t *p_len = &lengths[0] if lengths is not None else NULL
    cdef floating *p_cprev = &cprev[0, 0] if lstm else NULL
    cdef floating *p_cn = &cn[0, 0] if lstm else NULL
    cdef floating *p_gh = &gh[0, 0] if gru else NULL
    cdef floating *p_y = &y[0, 0] if y is not None else NULL
    with nogil:
        if floating is float:
            fnn_rnn_forward_f32(<fnn_blas_gemm_f32>sgemm, &d, &x[0, 0], ldx, &w_ih[0, 0],
                                &w_hh[0, 0], &bias[0], p_h0, p_c0, p_len, &gates[0, 0],
                                &hprev[0, 0], p_cprev, p_gh, p_y, ldy, &hn[0, 0], p_cn)
        else:
            fnn_rnn_forward_f64(<fnn_blas_gemm_f64>dgemm, &d, &x[0, 0], ldx, &w_ih[0, 0],
                                &w_hh[0, 0], &bias[0], p_h0, p_c0, p_len, &gates[0, 0],
                                &hprev[0, 0], p_cprev, p_gh, p_y, ldy, &hn[0, 0], p_cn)


def rnn_backward(int mode, bint batch_first, bint reverse, const floating[:, :] x,
                 const floating[:, ::1] w_ih, const floating[:, ::1] w_hh,
                 const int64_t[::1] lengths, const floating[:, ::1] gates,
                 const floating[:, ::1] hprev, const floating[:, ::1] cprev,
                 const floating[:, :] dy, const floating[:, ::1] dhn,
                 const floating[:, ::1] dcn, floating[:, ::1] dgates, floating[:, ::1] dh0,
                 floating[:, ::1] dc0, bint want_dh0, floating[:, :] dx, bint accumulate_dx,
                 floating[:, ::1] dw_ih, floating[:, ::1] dw_hh, floating[::1] dbias,
                 double[::1] scratch, bint gemm_only=False):
    """Backward of rnn_forward over the same x, weights, lengths, gates, hprev, cprev.

    dy (N*T, H) any row pitch, dhn, dcn (N, H): gradients of y, hn, cn, each None for
    zero. Out: dgates (N*T, G); dh0, dc0 (LSTM) (N, H) gradients of the initial state
    (dh0 complete only with want_dh0); dx (N*T, I) any row pitch or None, overwritten or
    accumulated; dw_ih, dw_hh accumulated (None: skipped); dbias (G) the column sums of
    dgates (None: skipped; then scratch may be None, else it holds
    COLSUM_SCRATCH_ROWS * G doubles). gemm_only as for rnn_forward."""
    if x is None or w_ih is None or w_hh is None or gates is None or hprev is None \
            or dgates is None or dh0 is None:
        raise ValueError("rnn_backward: x, weights, gates, hprev, dgates and dh0 are required")
    cdef fnn_rnn_dims d
    cdef Py_ssize_t N = dh0.shape[0], H = w_hh.shape[1], I = w_ih.shape[1], rows = x.shape[0]
    cdef Py_ssize_t isz = sizeof(floating)
    _rnn_dims(&d, mode, batch_first, reverse, N, rows, I, w_hh.shape[0], H)
    d.gemm_only = gemm_only
    cdef Py_ssize_t G = fnn_rnn_gate_width(&d), W = w_hh.shape[0]
    cdef bint lstm = mode == FNN_RNN_LSTM
    cdef Py_ssize_t ldx = _row_pitch("x", x.shape[0], x.shape[1], x.strides[0], x.strides[1],
                                     isz, rows, I)
    cdef Py_ssize_t lddy = 0, lddx = 0
    _check_shape("w_ih", w_ih.shape[0], w_ih.shape[1], W, I)
    _check_shape("gates", gates.shape[0], gates.shape[1], rows, G)
    _check_shape("hprev", hprev.shape[0], hprev.shape[1], rows, H)
    _check_shape("dgates", dgates.shape[0], dgates.shape[1], rows, G)
    _check_shape("dh0", dh0.shape[0], dh0.shape[1], N, H)
    if lstm:
        if cprev is None or dc0 is None:
            raise ValueError("rnn_backward: an LSTM needs cprev and dc0")
        _check_shape("cprev", cprev.shape[0], cprev.shape[1], rows, H)
        _check_shape("dc0", dc0.shape[0], dc0.shape[1], N, H)
        if dcn is not None:
            _check_shape("dcn", dcn.shape[0], dcn.shape[1], N, H)
    if dhn is not None:
        _check_shape("dhn", dhn.shape[0], dhn.shape[1], N, H)
    if dy is not None:
        lddy = _row_pitch("dy", dy.shape[0], dy.shape[1], dy.strides[0], dy.strides[1], isz,
                          rows, H)
    if dx is not None:
        lddx = _row_pitch("dx", dx.shape[0], dx.shape[1], dx.strides[0], dx.strides[1], isz,
                          rows, I)
    if dw_ih is not None:
        _check_shape("dw_ih", dw_ih.shape[0], dw_ih.shape[1], W, I)
    if dw_hh is not None:
        _check_shape("dw_hh", dw_hh.shape[0], dw_hh.shape[1], W, H)
    if dbias is not None:
        _check_shape("dbias", dbias.shape[0], 1, G, 1)
        if scratch is None or scratch.shape[0] < (FNN_ROW_CHUNKS + 3) * G:
            raise ValueError(f"scratch: expected at least {(FNN_ROW_CHUNKS + 3) * G} "
                             f"doubles")
    if lengths is not None:
        _check_lengths(lengths, N, d.steps)
    cdef const int64_t *p_len = &lengths[0] if lengths is not None else NULL
    cdef const floating *p_cprev = &cprev[0, 0] if lstm else NULL
    cdef const floating *p_dy = &dy[0, 0] if dy is not None else NULL
    cdef const floating *p_dhn = &dhn[0, 0] if dhn is not None else NULL
    cdef const floating *p_dcn = &dcn[0, 0] if lstm and dcn is not None else NULL
    cdef floating *p_dc0 = &dc0[0, 0] if lstm else NULL
    cdef floating *p_dx = &dx[0, 0] if dx is not None else NULL
    cdef floating *p_dw_ih = &dw_ih[0, 0] if dw_ih is not None else NULL
    cdef floating *p_dw_hh = &dw_hh[0, 0] if dw_hh is not None else NULL
    cdef floating *p_dbias = &dbias[0] if dbias is not None else NULL
    cdef double *p_scratch = &scratch[0] if dbias is not None else NULL
    with nogil:
        if floating is float:
            fnn_rnn_backward_f32(<fnn_blas_gemm_f32>sgemm, &d, &x[0, 0], ldx, &w_ih[0, 0],
                                 &w_hh[0, 0], p_len, &gates[0, 0], &hprev[0, 0], p_cprev,
                                 p_dy, lddy, p_dhn, p_dcn, &dgates[0, 0], &dh0[0, 0], p_dc0,
                                 want_dh0, p_dx, lddx, accumulate_dx, p_dw_ih, p_dw_hh,
                                 p_dbias, p_scratch)
        else:
            fnn_rnn_backward_f64(<fnn_blas_gemm_f64>dgemm, &d, &x[0, 0], ldx, &w_ih[0, 0],
                                 &w_hh[0, 0], p_len, &gates[0, 0], &hprev[0, 0], p_cprev,
                                 p_dy, lddy, p_dhn, p_dcn, &dgates[0, 0], &dh0[0, 0], p_dc0,
                                 want_dh0, p_dx, lddx, accumulate_dx, p_dw_ih, p_dw_hh,
                                 p_dbias, p_scratch)


cdef int _check_ids(const int64_t[::1] idx, Py_ssize_t V) except -1:
    cdef Py_ssize_t i
    for i in range(idx.shape[0]):
        if idx[i] < 0 or idx[i] >= V:
            raise IndexError(f"Embedding: token id {idx[i]} at position {i} is out of "
                             f"range [0, {V})")
    return 0


def embedding_forward(const int64_t[::1] idx, const floating[:, ::1] w, floating[:, ::1] y):
    """y[i] = w[idx[i]] for idx (n,) with ids in [0, V), w (V, D), y (n, D)."""
    if idx is None or w is None or y is None:
        raise ValueError("embedding_forward: idx, w and y are required")
    _check_shape("y", y.shape[0], y.shape[1], idx.shape[0], w.shape[1])
    _check_ids(idx, w.shape[0])
    if idx.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fnn_embedding_forward_f32(idx.shape[0], w.shape[1], &idx[0], &w[0, 0], &y[0, 0])
        else:
            fnn_embedding_forward_f64(idx.shape[0], w.shape[1], &idx[0], &w[0, 0], &y[0, 0])


def embedding_backward(const int64_t[::1] idx, const floating[:, ::1] gy,
                       int64_t padding_idx, floating[:, ::1] gw):
    """gw[idx[i]] += gy[i] for every i with idx[i] != padding_idx (-1: none); the same
    bits for any thread count."""
    if idx is None or gy is None or gw is None:
        raise ValueError("embedding_backward: idx, gy and gw are required")
    _check_shape("gy", gy.shape[0], gy.shape[1], idx.shape[0], gw.shape[1])
    _check_ids(idx, gw.shape[0])
    if idx.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fnn_embedding_backward_f32(idx.shape[0], gw.shape[0], gw.shape[1], &idx[0],
                                       &gy[0, 0], padding_idx, &gw[0, 0])
        else:
            fnn_embedding_backward_f64(idx.shape[0], gw.shape[0], gw.shape[1], &idx[0],
                                       &gy[0, 0], padding_idx, &gw[0, 0])
