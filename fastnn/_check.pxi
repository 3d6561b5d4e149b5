# Argument checks shared by every wrapper of the binding (included by _kernels.pyx).
#
# A wrapper passes each array to _buf (or a typed shorthand: _flt, _flt_like, _u8, _i64,
# _f64) with the element count the kernel will touch; only a pointer that passed
# becomes a kernel argument. An array must be a NumPy array of exactly the kernel's
# dtype, native byte order, aligned and C-contiguous, holding exactly that many
# elements (at least that many with _MIN: scratch), writeable if the kernel writes
# it (_W); None is accepted, as NULL, only where the kernel takes NULL (_OPT).
# Failures raise TypeError (not an array, wrong dtype, None) or ValueError (shape,
# size, layout), naming the function and the argument, the expected and actual value.

cdef enum:
    _W = 1      # the kernel writes the array
    _OPT = 2    # None allowed: the kernel gets NULL
    _MIN = 4    # the size is a lower bound (scratch), not the exact element count


cdef str _describe(object a):
    """What a value is, for error messages."""
    if a is None:
        return "None"
    if cnp.PyArray_Check(a):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


cdef str _dtype_name(int typenum):
    return str(cnp.PyArray_DescrFromType(typenum))


cdef int _fail(object a, str fn, str name, int typenum, Py_ssize_t size, int flags) except -1:
    """Raise the error that explains why `a` failed _buf's checks."""
    cdef str want = _dtype_name(typenum)
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{fn}: {name} must be a {want} array, got {_describe(a)}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"{fn}: {name} must be a {want} array, got {_describe(a)}")
    if not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{fn}: {name} must be in native byte order, got {a.dtype.str}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{fn}: {name} must be C-contiguous and aligned, got strides "
                         f"{a.strides} for shape {a.shape}")
    if flags & _W and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{fn}: {name} is written by the kernel but is read-only")
    raise ValueError(f"{fn}: {name} must hold {'at least ' if flags & _MIN else ''}{size} "
                     f"elements, got {arr.size} (shape {a.shape})")


cdef void *_buf(object a, str fn, str name, int typenum, Py_ssize_t size,
                int flags) except? NULL:
    """Data pointer of `a` once it passes the checks above; NULL for None with _OPT."""
    if a is None and flags & _OPT:
        return NULL
    if not cnp.PyArray_Check(a):
        _fail(a, fn, name, typenum, size, flags)
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int need = cnp.NPY_ARRAY_CARRAY if flags & _W else cnp.NPY_ARRAY_CARRAY_RO
    cdef Py_ssize_t n = cnp.PyArray_SIZE(arr)
    if (cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_CHKFLAGS(arr, need)
            or not cnp.PyArray_ISNOTSWAPPED(arr) or (n < size if flags & _MIN else n != size)):
        _fail(a, fn, name, typenum, size, flags)
    return cnp.PyArray_DATA(arr)


cdef cnp.ndarray _arr(object a, str fn, str name, int min_ndim):
    """`a` as an array with at least min_ndim dimensions (its dims give the sizes)."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{fn}: {name} must be a float32 or float64 array, got {_describe(a)}")
    if cnp.PyArray_NDIM(<cnp.ndarray>a) < min_ndim:
        raise ValueError(f"{fn}: {name} must have at least {min_ndim} dimension(s), got "
                         f"shape {a.shape}")
    return <cnp.ndarray>a


cdef bint _is_f32(object a, str fn, str name) except -1:
    """True for a float32 array, False for float64: the dtype the call runs in."""
    if cnp.PyArray_Check(a):
        if cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32:
            return True
        if cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT64:
            return False
    raise TypeError(f"{fn}: {name} must be a float32 or float64 array, got {_describe(a)}")


cdef int _same_shape(object a, cnp.ndarray ref, str fn, str name, str refname) except -1:
    """ValueError unless the array `a` (None passes) has the shape of `ref`."""
    if a is None or not cnp.PyArray_Check(a):
        return 0
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int k, nd = cnp.PyArray_NDIM(arr)
    if nd == cnp.PyArray_NDIM(ref):
        for k in range(nd):
            if arr.shape[k] != ref.shape[k]:
                break
        else:
            return 0
    raise ValueError(f"{fn}: {name} must have the shape of {refname}, "
                     f"{(<object>ref).shape}, got {a.shape}")


cdef inline int _typenum(floating *like) noexcept nogil:
    if floating is float:
        return cnp.NPY_FLOAT32
    else:
        return cnp.NPY_FLOAT64


cdef inline floating *_flt(floating *like, object a, str fn, str name, Py_ssize_t size,
                           int flags=0) except? NULL:
    """A float array of the call's dtype (the type of `like`) with `size` elements."""
    return <floating *>_buf(a, fn, name, _typenum(like), size, flags)


cdef inline floating *_flt_like(floating *like, object a, str fn, str name, cnp.ndarray ref,
                                str refname, int flags=0) except? NULL:
    """A float array of the call's dtype with the shape of `ref`."""
    _same_shape(a, ref, fn, name, refname)
    return <floating *>_buf(a, fn, name, _typenum(like), cnp.PyArray_SIZE(ref), flags)


cdef inline double *_f64(object a, str fn, str name, Py_ssize_t size,
                         int flags=0) except? NULL:
    return <double *>_buf(a, fn, name, cnp.NPY_FLOAT64, size, flags)


cdef inline uint8_t *_u8(object a, str fn, str name, Py_ssize_t size,
                         int flags=0) except? NULL:
    return <uint8_t *>_buf(a, fn, name, cnp.NPY_UINT8, size, flags)


cdef inline int64_t *_i64(object a, str fn, str name, Py_ssize_t size,
                          int flags=0) except? NULL:
    return <int64_t *>_buf(a, fn, name, cnp.NPY_INT64, size, flags)


cdef inline Py_ssize_t _trailing(cnp.ndarray a, int first) noexcept:
    """Product of the dimensions of `a` from `first` on (1 if none)."""
    cdef Py_ssize_t n = 1
    cdef int k
    for k in range(first, cnp.PyArray_NDIM(a)):
        n *= a.shape[k]
    return n


cdef int _positive(Py_ssize_t value, str fn, str name) except -1:
    if value < 1:
        raise ValueError(f"{fn}: {name} must be at least 1, got {value}")
    return 0
