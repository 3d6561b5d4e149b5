"""Input checks at the Python boundary: every public entry point turns user arrays into
what the C kernels expect (C-contiguous, the layer's float dtype, the right shape) or
raises an exception that names the layer and the expected versus actual value."""

import math

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
    complex data, and masked arrays with masked entries (their mask would be lost),
    with a message naming `where`."""
    if isinstance(x, np.ma.MaskedArray):
        masked = int(np.ma.count_masked(x))
        if masked:
            raise ValueError(
                f"{where}: a masked array with {masked} masked value"
                f"{'s' if masked > 1 else ''}; fill them (x.filled(value)) or "
                "drop those samples first"
            )
        x = x.data
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
        narrowing = x.dtype.kind == "f" and x.dtype.itemsize > np.dtype(dtype).itemsize
        with np.errstate(over="ignore"):  # reported below, with the index
            src, x = x, np.ascontiguousarray(x, dtype=dtype)
        if narrowing:
            _check_no_overflow(src, x, where)
    return x


def _check_no_overflow(src, converted, where):
    """ValueError if a finite value of src became infinite in `converted` (float64
    beyond the float32 range): a silent wrong answer otherwise."""
    bad = np.isinf(converted)
    if bad.any():
        bad &= np.isfinite(src)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{where}: value {float(src[idx]):g} at index {idx} is beyond "
                f"the {converted.dtype} range (max "
                f"{float(np.finfo(converted.dtype).max):g})"
            )


def check_finite(x, where, dtype=None):
    """Raise if x holds NaN or infinity (checked in chunks: x may be a memmap), or -
    given the float `dtype` it will be computed in - a value beyond that dtype's range."""
    if dtype is not None and x.dtype.kind == "f" and x.dtype.itemsize > np.dtype(dtype).itemsize:
        limit = float(np.finfo(dtype).max)
        order = "F" if x.flags.f_contiguous and not x.flags.c_contiguous else "C"
        flat = x.reshape(-1, order=order)  # a view in the array's own memory order
        for i in range(0, flat.size, 1 << 22):
            chunk = flat[i : i + (1 << 22)]
            if chunk.size and (chunk.max() > limit or chunk.min() < -limit):  # no temporaries
                over = np.flatnonzero((np.abs(chunk) > limit) & np.isfinite(chunk))
                if over.size:
                    bad = i + int(over[0])
                    raise ValueError(
                        f"{where}: value {float(flat[bad]):g} at index "
                        f"{tuple(int(v) for v in np.unravel_index(bad, x.shape, order=order))}"
                        " is beyond "
                        f"the {np.dtype(dtype)} range (max {limit:g})"
                    )
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


def plain(value):
    """value for a message: NumPy scalars as the Python numbers they hold (3, not
    np.int64(3))."""
    return value.item() if isinstance(value, np.generic) else value


def positive_int(value, name):
    """value as an int > 0, else ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {plain(value)!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def real_number(value, name, finite=True):
    """value as a float: TypeError for anything but a real number (True and strings
    included; NumPy scalars are fine), ValueError for NaN and infinity unless not
    `finite` (for callers whose range check says more)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a number, got {plain(value)!r}")
    v = float(value)
    if finite and not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v}")
    return v


def flag(value, name):
    """value as a bool: TypeError for anything but True/False (a string such as 'yes'
    or 'False' would otherwise count as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {plain(value)!r}")
    return bool(value)


def like_default(value, default, name):
    """value checked against the kind of its default: flags stay flags, numbers stay
    finite numbers (converted to float), tuples of numbers stay so; other defaults
    (None, strings) leave value as it is."""
    if isinstance(default, bool):
        return flag(value, name)
    if isinstance(default, (int, float)):
        return real_number(value, name)
    if isinstance(default, tuple) and all(isinstance(d, (int, float)) for d in default):
        if not isinstance(value, (tuple, list)) or len(value) != len(default):
            raise TypeError(f"{name} must be a tuple of {len(default)} numbers, got {value!r}")
        return tuple(real_number(v, f"{name}[{i}]") for i, v in enumerate(value))
    return value


def probability(value, name, high_inclusive=False):
    """value as a float in [0, 1) (or [0, 1]), else ValueError naming it."""
    v = real_number(value, name, finite=False)
    ok = 0.0 <= v <= 1.0 if high_inclusive else 0.0 <= v < 1.0
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in [0, 1{bracket}, got {v}")
    return v


def choice(value, options, name):
    """value if it is one of options, else ValueError listing them."""
    if value not in options:
        raise ValueError(f"unknown {name} {plain(value)!r}; expected one of {sorted(options)}")
    return value


def follow_dtype(x):
    """The dtype a parameter-free layer computes in: x's if float32/float64, else float32."""
    dt = getattr(x, "dtype", None)
    return dt if dt in FLOAT_DTYPES else np.dtype(np.float32)
