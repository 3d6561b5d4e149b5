# Dense layers: GEMM through scipy's BLAS (csrc/gemm.c) and the bias + activation
# epilogues around it (csrc/dense.c), also used by the standalone activation layers.
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from "binding.h" nogil:
    int FNN_ACT_IDENTITY, FNN_ACT_RELU, FNN_ACT_LEAKY_RELU, FNN_ACT_SIGMOID, FNN_ACT_TANH
    int FNN_ACT_ABS, FNN_ACT_HARDTANH, FNN_ACT_SOFTPLUS, FNN_ACT_ELU, FNN_ACT_GELU
    int FNN_ACT_GELU_TANH
    int fnn_act_needs_input(int act)

    ctypedef void (*fnn_blas_gemm_f32)(char *, char *, int *, int *, int *, float *,
                                       float *, int *, float *, int *, float *, float *,
                                       int *)
    ctypedef void (*fnn_blas_gemm_f64)(char *, char *, int *, int *, int *, double *,
                                       double *, int *, double *, int *, double *, double *,
                                       int *)
    void fnn_gemm_f32(fnn_blas_gemm_f32 blas, int trans_a, int trans_b, Py_ssize_t m,
                      Py_ssize_t n, Py_ssize_t k, double alpha, const float *a,
                      Py_ssize_t lda, const float *b, Py_ssize_t ldb, double beta,
                      float *c, Py_ssize_t ldc)
    void fnn_gemm_f64(fnn_blas_gemm_f64 blas, int trans_a, int trans_b, Py_ssize_t m,
                      Py_ssize_t n, Py_ssize_t k, double alpha, const double *a,
                      Py_ssize_t lda, const double *b, Py_ssize_t ldb, double beta,
                      double *c, Py_ssize_t ldc)

    void fnn_bias_act "FNN_FUSED(fnn_bias_act)"(
        int act, floating alpha, floating beta, Py_ssize_t rows, Py_ssize_t cols,
        const floating *bias, floating *z, floating *y)
    void fnn_act_backward "FNN_FUSED(fnn_act_backward)"(
        int act, floating alpha, floating beta, Py_ssize_t rows, Py_ssize_t cols,
        const floating *z, const floating *y, const floating *gy, floating *gz,
        floating *gbias, double *scratch)

ACT_IDENTITY = FNN_ACT_IDENTITY
ACT_RELU = FNN_ACT_RELU
ACT_LEAKY_RELU = FNN_ACT_LEAKY_RELU
ACT_SIGMOID = FNN_ACT_SIGMOID
ACT_TANH = FNN_ACT_TANH
ACT_ABS = FNN_ACT_ABS
ACT_HARDTANH = FNN_ACT_HARDTANH
ACT_SOFTPLUS = FNN_ACT_SOFTPLUS
ACT_ELU = FNN_ACT_ELU
ACT_GELU = FNN_ACT_GELU
ACT_GELU_TANH = FNN_ACT_GELU_TANH

# BLAS takes int dimensions.
cdef Py_ssize_t _BLAS_MAX = 2147483647


cdef int _check_act(int act, str fn) except -1:
    if act < 0 or act >= FNN_ACT_COUNT:
        raise ValueError(f"{fn}: act must be an activation code in [0, {FNN_ACT_COUNT}), "
                         f"got {act}")
    return 0


def act_needs_input(int act):
    """Whether the activation's derivative needs its input (else its output suffices)."""
    _check_act(act, "act_needs_input")
    return bool(fnn_act_needs_input(act))


def gemm(a, b, c, bint trans_a, bint trans_b, double alpha=1.0, double beta=0.0):
    """C := alpha * op(A) @ op(B) + beta * C for C-contiguous 2-D A, B, C, through
    scipy's BLAS (run single-threaded; csrc/gemm.c splits large products between
    fastnn's threads)."""
    if _is_f32(c, "gemm", "c"):
        _gemm(<float *>NULL, a, b, c, trans_a, trans_b, alpha, beta)
    else:
        _gemm(<double *>NULL, a, b, c, trans_a, trans_b, alpha, beta)


cdef int _gemm(floating *t, a, b, c, bint trans_a, bint trans_b, double alpha,
               double beta) except -1:
    cdef cnp.ndarray A = _arr(a, "gemm", "a", 2), B = _arr(b, "gemm", "b", 2)
    cdef cnp.ndarray C = _arr(c, "gemm", "c", 2)
    if A.ndim != 2 or B.ndim != 2 or C.ndim != 2:
        raise ValueError(f"gemm: a, b and c must be 2-D, got shapes {a.shape}, {b.shape}, "
                         f"{c.shape}")
    cdef Py_ssize_t m = C.shape[0], n = C.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t am = A.shape[1] if trans_a else A.shape[0]
    cdef Py_ssize_t bk = B.shape[1] if trans_b else B.shape[0]
    cdef Py_ssize_t bn = B.shape[0] if trans_b else B.shape[1]
    if am != m or bk != k or bn != n:
        raise ValueError(f"gemm: op(a) @ op(b) of shapes ({am}, {k}) @ ({bk}, {bn}) does "
                         f"not fit c of shape {c.shape} (trans_a={trans_a}, "
                         f"trans_b={trans_b})")
    if max(m, n, k, A.shape[1], B.shape[1]) > _BLAS_MAX:
        raise ValueError(f"gemm: dimensions must be below 2**31 (BLAS int), got a "
                         f"{a.shape}, b {b.shape}, c {c.shape}")
    cdef Py_ssize_t lda = max(1, A.shape[1]), ldb = max(1, B.shape[1]), ldc = max(1, n)
    cdef floating *pa = _flt(t, a, "gemm", "a", A.size)
    cdef floating *pb = _flt(t, b, "gemm", "b", B.size)
    cdef floating *pc = _flt(t, c, "gemm", "c", m * n, _W)
    # The BLAS routine's type differs with the dtype: the one call written twice.
    with nogil:
        if floating is float:
            fnn_gemm_f32(<fnn_blas_gemm_f32>sgemm, trans_a, trans_b, m, n, k, alpha, pa, lda,
                         pb, ldb, beta, pc, ldc)
        else:
            fnn_gemm_f64(<fnn_blas_gemm_f64>dgemm, trans_a, trans_b, m, n, k, alpha, pa, lda,
                         pb, ldb, beta, pc, ldc)
    return 0


def bias_act(int act, double alpha, double beta, bias, z, y):
    """y = act(z + bias) over a (rows, cols...) z; z += bias in place unless y is z.
    bias: cols elements or None; y: z's shape. alpha, beta: the activation's
    parameters (csrc/generic/act_math.h)."""
    if _is_f32(z, "bias_act", "z"):
        _bias_act(<float *>NULL, act, alpha, beta, bias, z, y)
    else:
        _bias_act(<double *>NULL, act, alpha, beta, bias, z, y)


cdef int _bias_act(floating *t, int act, double alpha, double beta, bias, z,
                   y) except -1:
    _check_act(act, "bias_act")
    cdef cnp.ndarray Z = _arr(z, "bias_act", "z", 1)
    cdef Py_ssize_t rows = Z.shape[0], cols = _trailing(Z, 1)
    cdef floating *pbias = _flt(t, bias, "bias_act", "bias", cols, _OPT)
    # z is written only when a bias is added out of place
    cdef floating *pz = _flt(t, z, "bias_act", "z", rows * cols,
                             _W if bias is not None and y is not z else 0)
    cdef floating *py = _flt_like(t, y, "bias_act", "y", Z, "z", _W)
    with nogil:
        fnn_bias_act(act, <floating>alpha, <floating>beta, rows, cols, pbias, pz, py)
    return 0


def act_backward(int act, double alpha, double beta, z, y, gy, gz, gbias, scratch=None):
    """gz = gy * act'(z, y); gbias += column sums of gz (if given; then scratch is a
    float64 array of COLSUM_SCRATCH_ROWS * cols elements, and gz may be None when only
    the sums are wanted). z is needed when act_needs_input(act), y by the other
    activations but identity; z, y, gz: gy's shape."""
    if _is_f32(gy, "act_backward", "gy"):
        _act_backward(<float *>NULL, act, alpha, beta, z, y, gy, gz, gbias, scratch)
    else:
        _act_backward(<double *>NULL, act, alpha, beta, z, y, gy, gz, gbias, scratch)


cdef int _act_backward(floating *t, int act, double alpha, double beta, z, y, gy, gz, gbias,
                       scratch) except -1:
    _check_act(act, "act_backward")
    cdef cnp.ndarray G = _arr(gy, "act_backward", "gy", 1)
    cdef Py_ssize_t rows = G.shape[0], cols = _trailing(G, 1)
    cdef bint needs_z = fnn_act_needs_input(act)
    cdef bint needs_y = not needs_z and act != FNN_ACT_IDENTITY
    cdef floating *pz = _flt_like(t, z, "act_backward", "z", G, "gy", 0 if needs_z else _OPT)
    cdef floating *py = _flt_like(t, y, "act_backward", "y", G, "gy", 0 if needs_y else _OPT)
    cdef floating *pgy = _flt(t, gy, "act_backward", "gy", rows * cols)
    cdef floating *pgz = _flt_like(t, gz, "act_backward", "gz", G, "gy",
                                   _W | _OPT if gbias is not None else _W)
    cdef floating *pgbias = _flt(t, gbias, "act_backward", "gbias", cols, _W | _OPT)
    cdef double *pscratch = _f64(scratch, "act_backward", "scratch", _colsum_scratch(cols),
                                 _W | _MIN if gbias is not None else _W | _MIN | _OPT)
    with nogil:
        fnn_act_backward(act, <floating>alpha, <floating>beta, rows, cols, pz, py, pgy, pgz,
                         pgbias, pscratch)
    return 0
