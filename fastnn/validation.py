"""Input checks at the Python boundary: every public entry point turns user arrays into
what the C kernels expect (C-contiguous, the layer's float dtype, the right shape) or
raises an exception that names the layer and the expected versus actual value."""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype):
    """The np.dtype for a float32/float64 spec, else ValueError."""
    dt = np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def as_array(x, where):
    """x as an ndarray of real numbers (bool/int/float), refusing object, string and
    complex data with a message naming `where`."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise ValueError(f"{where}: cannot convert input to an array ({e})") from None
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected a numeric array, got dtype {x.dtype}")
    return x


def as_float_input(x, dtype, where, ndim=None, features=None):
    """x converted once to a C-contiguous array of `dtype`; checks ndim and last-axis size.

    Strided, sliced, Fortran-ordered and integer arrays are accepted and copied; an
    array that already fits is returned as is (no copy)."""
    x = as_array(x, where)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{where}: expected a {ndim}-D array, got shape {x.shape}")
    if x.ndim == 0:
        raise ValueError(f"{where}: expected an array, got a scalar")
    if features is not None and x.shape[-1] != features:
        raise ValueError(
            f"{where}: expected {features} features in the last axis, got shape {x.shape}"
        )
    if x.dtype != dtype or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=dtype)
    return x


def check_finite(x, where):
    """Raise if x holds NaN or infinity (checked in chunks: x may be a memmap)."""
    flat = x.reshape(-1) if x.flags.c_contiguous else None
    if flat is None or x.dtype.kind != "f":
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"{where}: contains NaN or infinity")
        return
    step = 1 << 22
    for i in range(0, flat.size, step):
        if not np.isfinite(flat[i : i + step]).all():
            bad = i + int(np.flatnonzero(~np.isfinite(flat[i : i + step]))[0])
            idx = np.unravel_index(bad, x.shape)
            raise ValueError(f"{where}: contains NaN or infinity (first at index {idx})")


def positive_int(value, name):
    """value as an int > 0, else ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def probability(value, name, high_inclusive=False):
    """value as a float in [0, 1) (or [0, 1]), else ValueError naming it."""
    v = float(value)
    ok = 0.0 <= v <= 1.0 if high_inclusive else 0.0 <= v < 1.0
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in [0, 1{bracket}, got {value}")
    return v


def choice(value, options, name):
    """value if it is one of options, else ValueError listing them."""
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(options)}")
    return value


def follow_dtype(x):
    """The dtype a parameter-free layer computes in: x's if float32/float64, else float32."""
    dt = getattr(x, "dtype", None)
    return dt if dt in FLOAT_DTYPES else np.dtype(np.float32)
