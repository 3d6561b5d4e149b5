# Inference kernel family (csrc/infer.c): a chain of dense layers evaluated in one call,
# with checked arguments. Included by _kernels.pyx.
import numpy as np
from libc.stdlib cimport calloc, free

cdef extern from "infer.h" nogil:
    enum: FNN_DENSE_CHAIN_TILE_ROWS
    enum: FNN_DENSE_CHAIN_PANEL
    void fnn_dense_chain_f32(fnn_blas_gemm_f32 gemm, int nlayers, const Py_ssize_t *dims,
                             const float * const *w, const float * const *wt,
                             const float * const *b,
                             const int *act, const double *alpha, const double *beta,
                             Py_ssize_t rows, const float *x, float *out, float *buf)
    void fnn_dense_chain_f64(fnn_blas_gemm_f64 gemm, int nlayers, const Py_ssize_t *dims,
                             const double * const *w, const double * const *wt,
                             const double * const *b,
                             const int *act, const double *alpha, const double *beta,
                             Py_ssize_t rows, const double *x, double *out, double *buf)


cdef void *_matrix(object a, str fn, str name, int typenum, int flags) except? NULL:
    """The data pointer of a 2-D array passing _buf's checks (dtype, native order,
    C-contiguous, aligned, writeable with _W); the caller checks its shape."""
    if cnp.PyArray_Check(a) and cnp.PyArray_NDIM(<cnp.ndarray>a) != 2:
        raise ValueError(f"{fn}: {name} must be a 2-D array, got shape {a.shape}")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>a) if cnp.PyArray_Check(a) else 0
    return _buf(a, fn, name, typenum, n, flags)


def _zeros_aligned(shape, dtype, align=64):
    """A C-contiguous array of zeros starting on an `align`-byte boundary (the register
    tiles' whole-vector reads then never straddle two cache lines: 1.5x faster)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(size + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start : start + size].view(dtype).reshape(shape)


cdef class DenseChain:
    """Dense layers evaluated in one kernel call: y_l = act_l(y_{l-1} @ W_l.T + b_l),
    y_{-1} = x, each as one GEMM with the bias and activation applied in one fused
    pass; no Python runs between the layers.

    weights: C-contiguous (out_l, in_l) arrays of one float dtype with in_l = out_{l-1};
    biases: (out_l,) arrays or None; acts: (code, alpha, beta) per layer (ACT_* codes and
    their parameters). The arrays are referenced, not copied (the chain keeps them
    alive). The scratch between layers is grown for the largest batch and reused. In
    float32 the first batch of 4 rows or more makes a transposed copy of the weights,
    which batches that large multiply on fastnn's register tiles (the copy is kept:
    weights changed in place after that need a new chain)."""
    cdef int n
    cdef Py_ssize_t *dims
    cdef const void **w
    cdef const void **wt
    cdef const void **b
    cdef int *act
    cdef double *alpha
    cdef double *beta
    cdef bint f32
    cdef int typenum
    cdef Py_ssize_t wmax
    cdef readonly object dtype
    cdef object _keep
    cdef object _wt
    cdef cnp.ndarray _buf

    def __cinit__(self, weights, biases, acts):
        cdef int i, n = len(weights)
        if n == 0 or len(biases) != n or len(acts) != n:
            raise ValueError(f"DenseChain: expected as many biases and activations as "
                             f"weights (at least one), got {n} weights, {len(biases)} "
                             f"biases, {len(acts)} activations")
        dtype = getattr(weights[0], "dtype", None)
        if dtype is None or dtype not in (np.float32, np.float64):
            raise TypeError(f"DenseChain: weights must be float32 or float64 arrays, "
                            f"got {dtype}")
        self.dims = <Py_ssize_t *>calloc(n + 1, sizeof(Py_ssize_t))
        self.w = <const void **>calloc(n, sizeof(void *))
        self.wt = <const void **>calloc(n, sizeof(void *))
        self.b = <const void **>calloc(n, sizeof(void *))
        self.act = <int *>calloc(n, sizeof(int))
        self.alpha = <double *>calloc(n, sizeof(double))
        self.beta = <double *>calloc(n, sizeof(double))
        if not (self.dims and self.w and self.wt and self.b and self.act and self.alpha
                and self.beta):
            raise MemoryError()
        self.n, self.dtype, self.f32 = n, np.dtype(dtype), dtype == np.float32
        self.typenum = cnp.NPY_FLOAT32 if self.f32 else cnp.NPY_FLOAT64
        self.dims[0] = weights[0].shape[1] if getattr(weights[0], "ndim", 0) == 2 else 0
        self.wmax = 0
        for i in range(n):
            W, bias = weights[i], biases[i]
            _matrix(W, "DenseChain", f"weights[{i}]", self.typenum, 0)
            if W.shape[1] != self.dims[i]:
                raise ValueError(f"DenseChain: weights[{i}] has {W.shape[1]} input "
                                 f"features, the layer before gives {self.dims[i]}")
            self.dims[i + 1] = W.shape[0]
            if i < n - 1 and W.shape[0] > self.wmax:
                self.wmax = W.shape[0]
            self.w[i] = cnp.PyArray_DATA(<cnp.ndarray>W)
            if bias is not None:
                if (not isinstance(bias, cnp.ndarray) or bias.dtype != self.dtype
                        or bias.shape != (W.shape[0],) or not bias.flags.c_contiguous):
                    raise ValueError(f"DenseChain: biases[{i}] must be a contiguous "
                                     f"{self.dtype} array of shape ({W.shape[0]},), got "
                                     f"{getattr(bias, 'dtype', type(bias).__name__)} "
                                     f"{getattr(bias, 'shape', '')}")
                self.b[i] = cnp.PyArray_DATA(<cnp.ndarray>bias)
            code, a, bb = acts[i]
            if not 0 <= code < FNN_ACT_COUNT:
                raise ValueError(f"DenseChain: acts[{i}] has unknown activation code {code}")
            self.act[i], self.alpha[i], self.beta[i] = code, a, bb
        self._keep = (list(weights), list(biases))
        self._wt = None
        self._buf = np.empty(0, self.dtype)

    def __dealloc__(self):
        free(self.dims)
        free(<void *>self.w)
        free(<void *>self.wt)
        free(<void *>self.b)
        free(self.act)
        free(self.alpha)
        free(self.beta)

    @property
    def in_features(self):
        return self.dims[0]

    @property
    def out_features(self):
        return self.dims[self.n]

    def forward(self, x, out):
        """out[...] = the chain applied to x; x (rows, in_features) and out (rows,
        out_features), C-contiguous arrays of the chain's dtype, not overlapping.
        Returns out."""
        cdef char *px = <char *>_matrix(x, "DenseChain.forward", "x", self.typenum, 0)
        cdef char *po = <char *>_matrix(out, "DenseChain.forward", "out", self.typenum, _W)
        cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(<cnp.ndarray>x)
        cdef cnp.npy_intp *od = cnp.PyArray_DIMS(<cnp.ndarray>out)
        cdef Py_ssize_t rows = xd[0]
        if xd[1] != self.dims[0]:
            raise ValueError(f"DenseChain.forward: x must have {self.dims[0]} features, "
                             f"got shape {x.shape}")
        if od[0] != rows or od[1] != self.dims[self.n]:
            raise ValueError(f"DenseChain.forward: out must have shape "
                             f"{(rows, self.dims[self.n])}, got {out.shape}")
        cdef Py_ssize_t isz = 4 if self.f32 else 8
        cdef Py_ssize_t xbytes = rows * xd[1] * isz, obytes = rows * od[1] * isz
        if px < po + obytes and po < px + xbytes:
            raise ValueError("DenseChain.forward: out overlaps x")
        if rows == 0:
            return out
        self._run(px, po, rows)
        return out

    def run(self, x):
        """The chain applied to x in a new (rows, out_features) array when x is a
        non-empty C-contiguous (rows, in_features) array of the chain's dtype; None for
        anything else (the caller converts x, or says what is wrong with it). The lean
        path of a compiled predictor's call."""
        if not cnp.PyArray_Check(x):
            return None
        cdef cnp.ndarray a = <cnp.ndarray>x
        if (cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_TYPE(a) != self.typenum
                or not cnp.PyArray_CHKFLAGS(a, cnp.NPY_ARRAY_CARRAY_RO)
                or not cnp.PyArray_ISNOTSWAPPED(a)
                or cnp.PyArray_DIMS(a)[1] != self.dims[0] or cnp.PyArray_DIMS(a)[0] == 0):
            return None
        cdef cnp.npy_intp shape[2]
        shape[0], shape[1] = cnp.PyArray_DIMS(a)[0], self.dims[self.n]
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, shape, self.typenum, 0)
        self._run(<char *>cnp.PyArray_DATA(a), <char *>cnp.PyArray_DATA(out), shape[0])
        return out

    cdef int _run(self, char *px, char *po, Py_ssize_t rows) except -1:
        """The kernel call on checked arguments; grows the scratch for `rows` rows."""
        if cnp.PyArray_DIMS(self._buf)[0] < 2 * rows * self.wmax:
            self._buf = np.empty(2 * rows * self.wmax, self.dtype)
        cdef void *pbuf = cnp.PyArray_DATA(self._buf)
        if rows >= FNN_DENSE_CHAIN_TILE_ROWS and self.f32 and self._wt is None:
            self._transpose_weights()
        cdef const void **pwt = self.wt if self._wt is not None else NULL
        if self.f32:
            with nogil:
                fnn_dense_chain_f32(<fnn_blas_gemm_f32>sgemm, self.n, self.dims,
                                    <const float * const *>self.w,
                                    <const float * const *>pwt,
                                    <const float * const *>self.b, self.act, self.alpha,
                                    self.beta, rows, <float *>px, <float *>po,
                                    <float *>pbuf)
        else:
            with nogil:
                fnn_dense_chain_f64(<fnn_blas_gemm_f64>dgemm, self.n, self.dims,
                                    <const double * const *>self.w,
                                    <const double * const *>pwt,
                                    <const double * const *>self.b, self.act, self.alpha,
                                    self.beta, rows, <double *>px, <double *>po,
                                    <double *>pbuf)
        return 0

    cdef int _transpose_weights(self) except -1:
        """W^T of each layer in panels of FNN_DENSE_CHAIN_PANEL columns: (panels, in_l,
        panel), zero columns past out_l (the tiles read them in whole vectors)."""
        cdef int i
        cdef Py_ssize_t P = FNN_DENSE_CHAIN_PANEL
        wt = []
        for i in range(self.n):
            W = self._keep[0][i]
            n, k = W.shape
            panels = -(-n // P)
            padded = np.zeros((panels * P, k), self.dtype)
            padded[:n] = W
            t = _zeros_aligned((panels, k, P), self.dtype)
            t[...] = padded.reshape(panels, P, k).transpose(0, 2, 1)
            self.wt[i] = cnp.PyArray_DATA(<cnp.ndarray>t)
            wt.append(t)
        self._wt = wt
        return 0
